"""``serve``: answer predictions for a trained run over HTTP (``modelkit.serving.server``)."""

from __future__ import annotations

import argparse
import ipaddress
import sys

from modelkit.cli.common import UsageError, echo


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from modelkit.serving.http_limits import allowed_hosts, server_options
    from modelkit.serving.onnx_backend import make_predictor
    from modelkit.serving.server import PredictionService, create_app

    if (
        args.max_batch < 1
        or args.max_wait_ms < 0
        or args.max_body_mb <= 0
        or args.top_k < 1
        or args.max_connections < 1
    ):
        raise UsageError(
            "--max-batch, --top-k and --max-connections must be at least 1, --max-wait-ms >= 0, "
            "--max-body-mb > 0"
        )
    try:
        hosts = allowed_hosts(args.host, args.allowed_host)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    predictor = make_predictor(args.run, args.backend, args.device, batch_size=args.max_batch)
    service = PredictionService(
        predictor,
        max_batch=args.max_batch,
        max_wait_s=args.max_wait_ms / 1000,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        top_k=args.top_k,
    )
    if not _is_loopback(args.host):
        echo(
            f"note: listening on {args.host}: other machines can reach this server; it has no "
            f"authentication. It answers requests addressed to {', '.join(hosts)} "
            "(--allowed-host NAME adds the name clients use)",
            sys.stderr,
        )
    run_id = predictor.checkpoint.parent.parent.name
    echo(
        f"serving {run_id} ({predictor.arch}, {len(predictor.classes)} classes) on "
        f"http://{args.host}:{args.port}  (POST /predict, GET /model, GET /health)",
        sys.stderr,
    )
    uvicorn.run(
        create_app(service, hosts),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        **server_options(args.max_connections),
    )
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from modelkit.serving import BACKENDS

    p = sub.add_parser("serve", help="serve a trained run over HTTP (POST /predict)")
    p.add_argument("run", metavar="RUN_DIR", help="run folder (or a checkpoint file)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: this machine only)"
    )
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host name to answer besides localhost, 127.0.0.1 and --host (repeatable; "
        "'*.example.org' for its sub-domains, '*' for any); other names get 400",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=100,  # http_limits.MAX_CONNECTIONS, without importing uvicorn to build the parser
        help="connections served at once; beyond it requests get 503 (default 100)",
    )
    p.add_argument("--backend", choices=BACKENDS, default="pytorch", help="inference backend")
    p.add_argument("--device", default="auto", help="pytorch backend: auto, cpu, cuda, mps")
    p.add_argument(
        "--max-batch",
        type=int,
        default=32,
        help="most images in one forward pass; 1 turns batching off (default 32)",
    )
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=5.0,
        help="how long the first image waits for others to join its batch (default 5)",
    )
    p.add_argument(
        "--max-body-mb",
        type=float,
        default=32.0,
        help="largest request body in MB; larger ones get 413 (default 32)",
    )
    p.add_argument("--top-k", type=int, default=5, help="labels per image unless ?top_k= says")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info"])
    p.set_defaults(func=_serve)
