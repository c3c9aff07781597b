#!/usr/bin/env python3
"""A logic-tier worker in Python (nats-py), written from docs/logic-tier.md alone.

Serves console commands routed by a zserver Server over core NATS:
  upper   text in, upper-case text out
  whoami  answers which process served it ("python pid N")
  fail    answers an error with code APP_REFUSED

Run:  pip install nats-py && python3 examples/logic/worker.py --nats nats://127.0.0.1:4222
"""
import argparse
import asyncio
import os
import signal

import nats

QUEUE_GROUP = "zs-workers"  # every worker of a subject joins this queue group


def subject(name: str) -> str:
    return f"zs.logic.{name}"  # the default subject of a routed command


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nats", default="nats://127.0.0.1:4222")
    args = ap.parse_args()
    nc = await nats.connect(args.nats, name="zserver-python-worker")

    def handler_for(name: str):
        async def handle(msg) -> None:
            h = msg.headers or {}
            answer_headers = {"Zs-Request-Id": h.get("Zs-Request-Id", "")}
            text = msg.data.decode("utf-8")
            try:
                if h.get("Zs-Kind") != "console":
                    answer_headers["Zs-Error-Code"] = "ZS_WRONG_KIND"
                    body = f"command '{name}' is a console command here, not {h.get('Zs-Kind')}"
                elif name == "upper":
                    body = text.upper()
                elif name == "whoami":
                    body = f"python pid {os.getpid()}"
                else:
                    raise ValueError(f"refused: {text}")
            except ValueError as e:  # the error travels as its code and message
                answer_headers["Zs-Error-Code"] = "APP_REFUSED"
                body = str(e)
            if msg.reply:
                await nc.publish(msg.reply, body.encode("utf-8"), headers=answer_headers)

        return handle

    for name in ("upper", "whoami", "fail"):
        await nc.subscribe(subject(name), queue=QUEUE_GROUP, cb=handler_for(name))
    await nc.flush()
    print(f"python worker: serving via {args.nats} (pid {os.getpid()})", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await nc.drain()


if __name__ == "__main__":
    asyncio.run(main())
