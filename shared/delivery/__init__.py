"""Delivery: only the changes a target has not acknowledged (deliver), target config (targets), WeCom
robot messages (robot)."""
