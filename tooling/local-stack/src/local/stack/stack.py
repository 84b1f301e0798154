"""LocalStack: everything template.yaml describes, running on this machine with no Docker and no AWS.

    with LocalStack() as stack:
        stack.api_url, stack.api_key           # the API Gateway emulation and its generated API key
        stack.invoke("AvailabilityFunction", event)
        stack.put_events([{"Source": ..., "DetailType": ..., "Detail": {...}, "EventBusName": ...}])
        stack.fire_schedule("CustomerSyncFunctionNightly")
        stack.wait_idle()                      # queues drained, nothing in flight

Start order: the Salesforce emulator and the stand-ins (their URLs become parameter values, wiring.toml),
moto's server, the secrets, the template's resources, then one FunctionRunner per function, the API and the
event sources. `start_api=False, start_sources=False` gives what `python -m local invoke` needs.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from .apigw import ApiGateway, Reply, sign_headers
from .aws import MotoServer, Provisioner
from .cfn import ACCOUNT_ID
from .project import find_template
from .runtime import FunctionRunner, FunctionSpec, InvocationResult, LogSink, default_concurrency, default_sink
from .services import SALESFORCE_SECRET_NAME, Services, load_wiring, salesforce_schema_files
from .sources import Activity, AsyncInvoker, Delivery, SqsPoller, TapPoller, schedule_event
from .template import REGION, STACK_NAME, Function, StackModel, declared_parameters, read_template


class LocalStack:
    """`template`: the project's template.yaml (default: the nearest one from the current directory up)."""

    def __init__(self, template: Path | str | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 env_file: Path | str | None = None, parameters: dict[str, str] | None = None,
                 log_sink: LogSink | None = None, start_api: bool = True, start_sources: bool = True,
                 retry_delays: tuple[float, ...] = (1.0, 2.0), api_key: str | None = None,
                 salesforce_state_dir: Path | None = None):
        self.template = find_template(template)
        self.project_root = self.template.parent
        self.host, self.port = host, port
        self.env_file = Path(env_file) if env_file else None
        self.parameter_overrides = dict(parameters or {})
        self.log_sink = log_sink or default_sink
        self.start_api, self.start_sources = start_api, start_sources
        self.retry_delays = retry_delays
        self._api_key = api_key
        self.services = Services(salesforce_state_dir, schema_files=salesforce_schema_files(root=self.project_root))
        self.moto = MotoServer(host)
        self.model: StackModel | None = None
        self.provisioner: Provisioner | None = None
        self.runners: dict[str, FunctionRunner] = {}
        self.gateway: ApiGateway | None = None
        self.activity = Activity()
        self.history: list[Delivery] = []
        self.invoker: AsyncInvoker | None = None
        self._pollers: list[Any] = []
        self.problems: list[str] = []
        self._started = False

    # -- life cycle ------------------------------------------------------------------------------------------

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.services.start()
        self.problems += self.services.problems
        self.moto.start()
        wiring = load_wiring()
        env_all, env_by_function, env_params = read_env_file(self.env_file) if self.env_file else ({}, {}, {})

        # Secrets that parameters point at exist before the template is read (their ARNs are parameter values).
        self.services.values["salesforce"]["secret_arn"] = self.moto.create_secret(
            SALESFORCE_SECRET_NAME, self.services.salesforce_secret())
        for name, values in self.services.values.items():
            if "api_key" in values:
                values["api_key_secret_arn"] = self.moto.create_secret(
                    f"local/{name}/api-key", json.dumps({"api_key": values["api_key"]}))
            if "signing_key" in values:
                values["signing_secret_arn"] = self.moto.create_secret(
                    f"local/{name}/signing-key", json.dumps({"current": values["signing_key"]}))

        declared = declared_parameters(self.template)
        parameters: dict[str, str] = {}
        for name, value in {**wiring["parameters"], **env_params, **self.parameter_overrides}.items():
            if name not in declared:
                continue
            try:
                parameters[name] = self.services.expand(value)
            except KeyError as exc:
                self.problems.append(f"parameter {name}: {exc} has no local value (is that stand-in running?)")
        self.model = model = read_template(self.template, parameters, self.moto.endpoint)
        self.problems += model.problems
        for name in model.missing_parameters():
            self.problems.append(f"parameter {name} has no default and no local value (add it to the "
                                 "local stack's wiring.toml, or give --parameter-overrides)")
        self.provisioner = Provisioner(model, self.moto)
        self.provisioner.create_all()

        extra_env = {}
        for name, value in wiring["environment"].items():
            try:
                extra_env[name] = self.services.expand(value)
            except KeyError as exc:
                self.problems.append(f"environment {name}: {exc} has no local value")
        pool = default_concurrency()
        for fn in model.functions.values():
            env = {**model.environment(fn.logical_id), **extra_env, **self.moto.environment(), **env_all,
                   **env_by_function.get(fn.logical_id, {})}
            spec = FunctionSpec(fn.logical_id, fn.name, fn.arn, fn.handler, fn.code_uri, fn.layers,
                                float(fn.timeout), fn.memory, env,
                                max_concurrency=fn.reserved_concurrency or pool)
            self.runners[fn.logical_id] = FunctionRunner(spec, self.log_sink)

        self.invoker = AsyncInvoker(self.invoke, lambda: self.moto.client("sqs"), self.activity, self.history,
                                    self._failure_queue_url, self.retry_delays)
        self.gateway = ApiGateway(model, self.invoke, lambda: self.moto.client("sqs"), self._api_key,
                                  log_sink=self.log_sink)
        self.gateway.control = self._control
        self.problems += self.gateway.problems
        if self.start_api:
            self.gateway.serve(self.host, self.port)
            self.services.start_late(self.gateway.url, self.gateway.api_key)
            self.problems += [p for p in self.services.problems if p not in self.problems]
        if self.start_sources:
            self._start_sources()
        self._started = True

    def _start_sources(self) -> None:
        assert self.model is not None
        assert self.provisioner is not None
        assert self.invoker is not None
        sqs = self.moto.client("sqs")
        for fn in self.model.functions.values():
            for mapping in fn.sqs_events:
                if not mapping.enabled:
                    continue
                url = self.queue_url(mapping.queue)
                arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
                self._pollers.append(SqsPoller(fn, mapping, url, arn, lambda: self.moto.client("sqs"), self.invoke,
                                               self.activity, self.history).start())
        for tap in self.provisioner.taps:
            fn = self.model.functions[tap.function]
            self._pollers.append(TapPoller(fn, tap.rule, tap.queue_url, lambda: self.moto.client("sqs"),
                                           self.invoker, self.activity).start())

    def stop(self) -> None:
        """Within about a second even with functions busy: event sources take nothing more, every runner ends
        its workers (busy ones by SIGTERM), so nothing is left to wait for, then the servers stop."""
        for poller in self._pollers:
            poller.request_stop()
        if self.invoker is not None:
            self.invoker.stopping.set()
        for runner in self.runners.values():
            runner.stop()
        for poller in self._pollers:
            poller.stop()
        self._pollers.clear()
        if self.gateway is not None:
            self.gateway.stop()
        self.runners.clear()
        try:
            if self.moto.endpoint:
                self.moto.stop()
        finally:
            self.services.stop()
        self._started = False

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what a user or a test reaches ----------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        assert self.gateway is not None
        return self.gateway.url

    @property
    def api_key(self) -> str:
        assert self.gateway is not None
        return self.gateway.api_key

    def iam_headers(self, method: str, url: str, body: bytes | str = b"", headers: dict[str, str] | None = None
                    ) -> dict[str, str]:
        """Headers of a SigV4-signed request (local fake credentials), for the API's AWS_IAM routes."""
        data = body.encode() if isinstance(body, str) else body
        return sign_headers(method, url, data, headers)

    def function(self, name: str) -> Function:
        assert self.model is not None
        return self.model.function(name)

    def invoke(self, name: str, event: Any, handler: str | None = None) -> InvocationResult:
        """A synchronous invocation (RequestResponse), as `aws lambda invoke` or API Gateway makes it.
        `handler` runs another entry point of the function's code with the same configuration."""
        fn = self.function(name)
        runner = self.runners[fn.logical_id]
        if handler and handler != fn.handler:
            key = f"{fn.logical_id}:{handler}"
            if key not in self.runners:
                self.runners[key] = FunctionRunner(replace(runner.spec, handler=handler), self.log_sink)
            runner = self.runners[key]
        return runner.invoke(event)

    def queue_url(self, logical_id: str) -> str:
        assert self.model is not None
        return str(self.model.values.ref(logical_id))

    def client(self, service: str) -> Any:
        """A boto3 client of the local AWS side."""
        return self.moto.client(service)

    def secret_value(self, logical_id: str) -> str:
        """A secret's value (generated ones included), e.g. the HMAC key a caller signs webhooks with."""
        assert self.model is not None
        arn = self.model.values.ref(logical_id)
        return self.moto.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]

    def put_events(self, entries: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """EventBridge PutEvents; a dict Detail is serialised. Rules route them to their targets."""
        prepared = []
        for entry in entries:
            item = dict(entry)
            if isinstance(item.get("Detail"), (dict, list)):
                item["Detail"] = json.dumps(item["Detail"])
            prepared.append(item)
        response = self.moto.client("events").put_events(Entries=prepared)
        if response.get("FailedEntryCount"):
            raise RuntimeError(f"PutEvents failed: {response['Entries']}")
        return response

    def schedules(self) -> dict[str, str]:
        """{name to fire: "Function (expression)"}."""
        assert self.model is not None
        return {name: f"{fn.logical_id} ({s.expression})" for name, (fn, s) in self.model.schedules().items()}

    def fire_schedule(self, name: str, wait: bool = True) -> InvocationResult | None:
        """Fire a schedule now, as EventBridge would (asynchronously: retried, then the failure destination).
        With wait, returns the last attempt's result once retries are over."""
        assert self.model is not None
        assert self.invoker is not None
        schedules = self.model.schedules()
        if name not in schedules:
            raise KeyError(f"no schedule {name!r} (schedules: {', '.join(sorted(schedules)) or 'none'})")
        fn, schedule = schedules[name]
        rule_arn = self.model.values.getatt(name, "Arn") if name in self.model.resources else \
            f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{STACK_NAME}-{name}"
        event = schedule_event(schedule, rule_arn)
        if not wait:
            self.invoker.submit(fn, event, f"schedule:{name}")
            return None
        # Function errors follow the function's EventInvokeConfig; the schedule's own RetryPolicy covers
        # failures to deliver to Lambda, which do not happen locally.
        with self.activity:
            return self.invoker.run(fn, event, f"schedule:{name}")

    def wait_idle(self, timeout: float = 30.0, settle: float = 0.3) -> bool:
        """True once every polled queue is empty (visible and delayed) and nothing is in flight, twice in a
        row `settle` seconds apart. Messages waiting out a visibility timeout for a retry do not count."""
        assert self.model is not None
        assert self.provisioner is not None
        urls = [self.queue_url(m.queue) for fn in self.model.functions.values() for m in fn.sqs_events]
        urls += [tap.queue_url for tap in self.provisioner.taps]
        sqs = self.moto.client("sqs")

        def idle() -> bool:
            if self.activity.busy:
                return False
            for url in urls:
                attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
                    "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"])["Attributes"]
                if int(attrs["ApproximateNumberOfMessages"]) or int(attrs["ApproximateNumberOfMessagesDelayed"]):
                    return False
            return True

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if idle():
                time.sleep(settle)
                if idle():
                    return True
            time.sleep(0.1)
        return False

    def _failure_queue_url(self, fn: Function) -> str | None:
        if not fn.on_failure:
            return None
        assert self.model is not None
        value = self.model.evaluate(fn.on_failure, f"{fn.logical_id} failure destination")
        name = str(value).rsplit(":", 1)[-1].rsplit("/", 1)[-1]
        return self.moto.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]

    # -- status and control -------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """What `python -m local up` prints: URLs, the API key, routes, schedules, problems."""
        assert self.model is not None
        assert self.gateway is not None
        return {
            "api_url": self.gateway.url if self.gateway._server else None,
            "api_key": self.api_key,
            "aws_endpoint": self.moto.endpoint,
            "salesforce": {k: v for k, v in self.services.values["salesforce"].items()
                           if k in ("instance_url", "login_url", "control_url", "ca_bundle", "username")},
            "stand_ins": {name: s.url for name, s in self.services.stand_ins.items()},
            "routes": [r.describe() for r in self.gateway.routes],
            "queues": {fn.logical_id: [m.queue for m in fn.sqs_events] for fn in self.model.functions.values()
                       if fn.sqs_events},
            "rules": {fn.logical_id: [e.rule for e in fn.rule_events] for fn in self.model.functions.values()
                      if fn.rule_events},
            "schedules": self.schedules(),
            "functions": sorted(self.model.functions),
            "problems": self.problems,
        }

    def _control(self, method: str, path: str, body: bytes) -> Reply | None:
        """/__local/...: status, fire a schedule, put events, invoke a function (for `python -m local fire`)."""
        parts = [p for p in path.split("?")[0].split("/") if p][1:]

        def reply(status: int, data: Any) -> Reply:
            return Reply(status, {"Content-Type": ["application/json"]}, json.dumps(data, default=str).encode())

        try:
            if method == "GET" and parts == ["status"]:
                return reply(200, self.summary())
            if method == "GET" and parts == ["credentials"]:  # loopback only: `python -m local sign` reads it
                from local.seed import local_credentials

                return reply(200, local_credentials(self))
            if method == "POST" and parts == ["seed"]:
                from local.seed import seed_stack

                return reply(200, seed_stack(self))
            if method == "POST" and len(parts) == 3 and parts[0] == "schedules" and parts[2] == "fire":
                result = self.fire_schedule(parts[1])
                assert result is not None
                options = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
                if options.get("wait", [""])[-1] == "outcome":  # `python -m local fire`: what the run led to
                    from local.outcome import follow

                    followed = follow(self, result, float(options.get("timeout", ["600"])[-1]))
                    return reply(200 if followed["ok"] else 502, followed)
                return reply(200 if result.ok else 502, {"ok": result.ok, "result": result.to_json()})
            if method == "POST" and parts == ["events"]:
                entries = json.loads(body or b"[]")
                return reply(200, self.put_events(entries if isinstance(entries, list) else [entries]))
            if method == "POST" and len(parts) == 3 and parts[0] == "functions" and parts[2] == "invoke":
                result = self.invoke(parts[1], json.loads(body or b"{}"))
                return reply(200, {"ok": result.ok, "result": result.to_json()})
            if method == "POST" and parts == ["wait-idle"]:
                return reply(200, {"idle": self.wait_idle()})
        except KeyError as exc:
            return reply(404, {"message": str(exc).strip('"')})
        except (ValueError, RuntimeError) as exc:
            return reply(400, {"message": str(exc)})
        return reply(404, {"message": f"no control endpoint {method} {path}"})


def read_env_file(path: Path) -> tuple[dict[str, str], dict[str, dict[str, str]], dict[str, str]]:
    """(variables for every function, variables per function, template parameters) from an env file.

    JSON in `sam local invoke --env-vars` form ({"Parameters": {...all functions}, "<LogicalId>": {...}}),
    or dotenv lines (KEY=VALUE, for every function; `# comments`; a `PARAM:Name=value` line sets a template
    parameter)."""
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        data = json.loads(text)
        every = {k: str(v) for k, v in (data.pop("Parameters", None) or {}).items()}
        return every, {fn: {k: str(v) for k, v in values.items()} for fn, values in data.items()}, {}
    every, params = {}, {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if key.startswith("PARAM:"):
            params[key[6:]] = value
        else:
            every[key] = value
    return every, {}, params

