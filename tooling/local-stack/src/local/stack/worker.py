"""One function's execution environment: run as a script by local.stack.runtime, never imported.

Like the Lambda Python runtime it puts the function's CodeUri folder and its layers first on sys.path,
imports the handler once (the init phase, a cold start) and then serves invocations until stdin closes.
Protocol: one JSON request per line on stdin ({"event", "request_id", "deadline_ms"}), one JSON answer per
line on the file descriptor that was stdout when the process started; fd 1 itself is pointed at stderr so
that whatever the function prints or logs reaches the terminal, not the protocol. Standard library only: the
function's own environment must not see the local stack's modules.

Ctrl-C in a terminal sends SIGINT to every process of the foreground group, this one included: it is ignored
(no KeyboardInterrupt traceback), because the stack's process handles it and ends this one, by closing its
input when idle, by SIGTERM when busy.
"""

import importlib
import json
import os
import signal
import sys
import time
import traceback

signal.signal(signal.SIGINT, signal.SIG_IGN)
_protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
os.dup2(2, 1)
sys.stdout = os.fdopen(1, "w", buffering=1, encoding="utf-8", closefd=False)


class LambdaContext:
    """The context object of the Python runtime, with a real countdown to the invocation's deadline."""

    def __init__(self, request_id: str, deadline_ms: int):
        env = os.environ
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = env.get("LOCAL_FUNCTION_ARN", "")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.aws_request_id = request_id
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(int(self._deadline_ms - time.time() * 1000), 0)


def _error(error_type: str, exc: BaseException | None, message: str | None = None) -> dict:
    return {"errorType": error_type, "errorMessage": message if message is not None else str(exc),
            "stackTrace": traceback.format_exception(exc)[1:] if exc is not None else []}


def _send(message: dict) -> None:
    _protocol.write(json.dumps(message) + "\n")
    _protocol.flush()


def _load_handler(spec: str):
    module_name, _, function_name = spec.rpartition(".")
    if not module_name:
        raise ValueError(f"Bad handler '{spec}': not enough values to unpack (expected 2, got 1)")
    module = importlib.import_module(module_name.replace("/", "."))
    handler = getattr(module, function_name, None)
    if handler is None:
        raise AttributeError(f"Handler '{function_name}' missing on module '{module_name}'")
    return handler


def main() -> None:
    code_uri = os.environ["LAMBDA_TASK_ROOT"]
    layers = [p for p in os.environ.get("LOCAL_LAYER_PATHS", "").split(os.pathsep) if p]
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [code_uri, *layers] + [p for p in sys.path if p and os.path.abspath(p) != here]
    os.chdir(code_uri)

    started = time.monotonic()
    init_error = None
    handler = None
    try:
        handler = _load_handler(os.environ["_HANDLER"])
    except ImportError as exc:
        init_error = _error("Runtime.ImportModuleError", exc, f"Unable to import module '{os.environ['_HANDLER']}': "
                                                             f"{exc}")
    except SyntaxError as exc:
        init_error = _error("Runtime.UserCodeSyntaxError", exc, f"Syntax error in module: {exc}")
    except (AttributeError, ValueError) as exc:
        init_error = _error("Runtime.HandlerNotFound", exc)
    except Exception as exc:  # an error in the module's own top-level code
        traceback.print_exception(exc, file=sys.stderr)
        init_error = _error(type(exc).__name__, exc)
    _send({"init_ms": round((time.monotonic() - started) * 1000, 1), "error": init_error})

    for line in sys.stdin:
        request = json.loads(line)
        if init_error is not None:
            _send({"error": init_error})
            continue
        context = LambdaContext(request["request_id"], request["deadline_ms"])
        os.environ["_X_AMZN_TRACE_ID"] = request.get("trace_id", "")
        try:
            result = handler(request["event"], context)
        except Exception as exc:
            traceback.print_exception(exc, file=sys.stderr)
            _send({"error": _error(type(exc).__name__, exc)})
            continue
        try:
            _send({"result": result})
        except (TypeError, ValueError) as exc:
            _send({"error": _error("Runtime.MarshalError", exc, f"Unable to marshal response: {exc}")})


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:  # the stack went away while this environment was answering: nobody to tell
        os._exit(0)
