"""``mmchat serve``: the Gradio app."""

from __future__ import annotations

from chat.commands.common import add_common, load


def register(sub) -> None:
    p = sub.add_parser("serve", help="start the web app", description="Start the Gradio web app.")
    add_common(p, json_flag=False)
    p.add_argument("--host", help="interface to bind (default from config: 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default from config: 7860)")
    p.add_argument("--auth", metavar="USER:PASS", help="require a login (also: $MMCHAT_AUTH)")
    p.set_defaults(func=run)


def run(args) -> int:
    from chat.server import serve

    serve(load(args), host=args.host, port=args.port, auth=args.auth)
    return 0
