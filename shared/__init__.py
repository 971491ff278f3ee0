"""Aftersync domain: canonical models, sources, state, delivery — everything the Lambdas share."""
