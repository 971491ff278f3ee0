"""The webhook API: ``POST /webhooks/{source}/{tenant}`` -> ingest, throttled, access-logged."""

from __future__ import annotations

from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra.config import EnvironmentConfig
from infra.constructs.nag import acknowledge


class WebhookApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cfg: EnvironmentConfig,
        ingest: lambda_.IFunction,
        lookup: lambda_.IFunction,
        sidebar: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        access_logs = logs.LogGroup(self, "AccessLogs", retention=logs.RetentionDays.ONE_YEAR)
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=cfg.resource("webhooks"),
            description="Aftersync webhook receiver",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # Every body arrives base64-encoded, so signatures are checked over the exact bytes sent.
            binary_media_types=["*/*"],
            cloud_watch_role=True,
            deploy_options=apigw.StageOptions(
                stage_name=cfg.name,
                throttling_rate_limit=cfg.api_throttle.rate_limit,
                throttling_burst_limit=cfg.api_throttle.burst_limit,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # request bodies carry PII; never log them
                metrics_enabled=True,
                tracing_enabled=True,
            ),
        )
        validator = self.api.add_request_validator("PathValidator", validate_request_parameters=True)
        route = self.api.root.add_resource("webhooks").add_resource("{source}").add_resource("{tenant}")
        method = route.add_method(
            "POST",
            apigw.LambdaIntegration(ingest, proxy=True),
            request_parameters={"method.request.path.source": True, "method.request.path.tenant": True},
            request_validator=validator,
            authorization_type=apigw.AuthorizationType.NONE,
        )
        reason = (
            "Webhook senders (Shopify and the other platforms) cannot present IAM or Cognito credentials; "
            "each request is authenticated by its platform HMAC signature, verified over the raw body in the "
            "ingest function before anything is stored."
        )
        acknowledge(method, "AwsSolutions-APIG4", reason)
        acknowledge(method, "AwsSolutions-COG4", reason)
        acknowledge(
            self.api,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
            "The account-level role API Gateway needs to write access logs; AWS-managed and scoped to logging.",
        )
        acknowledge(
            self.api,
            "AwsSolutions-APIG2",
            "Path parameters are validated by API Gateway; bodies cannot be: the signature must be checked over "
            "the exact raw bytes first, then the ingest function answers 400 with the reason for malformed bodies.",
        )
        tenant = self._lookup_route(lookup, validator)
        self._sidebar_routes(tenant, sidebar, validator)
        if cfg.waf:
            self._attach_waf(cfg)
        else:
            acknowledge(
                self.api.deployment_stage,
                "AwsSolutions-APIG3",
                f"WAF is off in {cfg.name} (cdk.json `waf`); the stage is throttled and every request "
                "signature-checked.",
            )
        self.url = self.api.url_for_path("/webhooks")

    def _lookup_route(self, lookup: lambda_.IFunction, validator: apigw.RequestValidator) -> apigw.Resource:
        """``GET /v1/{tenant}/lookup``: the customer view for a reader (Customer 360). Answers ``/v1/{tenant}``."""
        tenant = self.api.root.add_resource("v1").add_resource("{tenant}")
        route = tenant.add_resource("lookup")
        method = route.add_method(
            "GET",
            apigw.LambdaIntegration(lookup, proxy=True),
            request_parameters={"method.request.path.tenant": True},
            request_validator=validator,
            authorization_type=apigw.AuthorizationType.NONE,
        )
        reason = (
            "Readers (an agent's desk, a call centre's screen pop, a WeCom sidebar) present a bearer key bound to "
            "one tenant and a role, kept in Secrets Manager and compared in constant time by the lookup function "
            "before anything is read; a refused request reads nothing."
        )
        acknowledge(method, "AwsSolutions-APIG4", reason)
        acknowledge(method, "AwsSolutions-COG4", reason)
        return tenant

    def _sidebar_routes(
        self, tenant: apigw.Resource, sidebar: lambda_.IFunction, validator: apigw.RequestValidator
    ) -> None:
        """``GET /v1/{tenant}/sidebar`` (the WeCom sidebar page, a call centre's screen pop) and the page's
        two calls, ``…/sidebar/jsapi`` and ``…/sidebar/data``: one function behind all three."""
        page = tenant.add_resource("sidebar")
        integration = apigw.LambdaIntegration(sidebar, proxy=True)
        reason = (
            "The page is opened by WeCom's webview with an OAuth code (exchanged by the sidebar function through "
            "the WeCom API for the member, mapped to a role) or by a call centre with a reader's bearer key or a "
            "signed link; its calls carry the HMAC-signed session the page was given. IAM or Cognito cannot be "
            "presented by a WeCom webview; every request is authenticated by the function before anything is read."
        )
        for route in (page, page.add_resource("jsapi"), page.add_resource("data")):
            method = route.add_method(
                "GET",
                integration,
                request_parameters={"method.request.path.tenant": True},
                request_validator=validator,
                authorization_type=apigw.AuthorizationType.NONE,
            )
            acknowledge(method, "AwsSolutions-APIG4", reason)
            acknowledge(method, "AwsSolutions-COG4", reason)

    def _attach_waf(self, cfg: EnvironmentConfig) -> None:
        def managed(name: str, priority: int, overrides: tuple[str, ...] = ()) -> wafv2.CfnWebACL.RuleProperty:
            return wafv2.CfnWebACL.RuleProperty(
                name=name,
                priority=priority,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS",
                        name=name,
                        rule_action_overrides=[
                            wafv2.CfnWebACL.RuleActionOverrideProperty(
                                name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                            )
                            for rule in overrides
                        ]
                        or None,
                    )
                ),
                visibility_config=_visibility(name),
            )

        acl = wafv2.CfnWebACL(
            self,
            "Waf",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility(cfg.resource("waf")),
            rules=[
                managed("AWSManagedRulesAmazonIpReputationList", 0),
                # Order payloads routinely exceed the common set's 8 KB body limit: count, don't block.
                managed("AWSManagedRulesCommonRuleSet", 1, ("SizeRestrictions_BODY",)),
                wafv2.CfnWebACL.RuleProperty(
                    name="RatePerIp",
                    priority=2,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            aggregate_key_type="IP", limit=int(cfg.api_throttle.rate_limit * 300)
                        )
                    ),
                    visibility_config=_visibility("RatePerIp"),
                ),
            ],
        )
        wafv2.CfnWebACLAssociation(
            self, "WafAssociation", resource_arn=self.api.deployment_stage.stage_arn, web_acl_arn=acl.attr_arn
        )


def _visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=name.replace("-", ""), sampled_requests_enabled=True
    )
