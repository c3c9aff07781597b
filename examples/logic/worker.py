#!/usr/bin/env python3
"""A logic-tier worker in Python (nats-py), written from docs/logic-tier.md alone.

Serves console commands routed by a zserver Server over core NATS:
  upper   text in, upper-case text out
  whoami  answers which process served it ("python pid N")
  fail    answers an error with code APP_REFUSED
and, with --durable, the durable command `square` (JetStream: pull, answer, then ack):
  square  text in (a number), its square out; idempotent, so a redelivery is harmless

Run:  pip install nats-py && python3 examples/logic/worker.py --nats nats://127.0.0.1:4222
"""
import argparse
import asyncio
import os
import signal
import time

import nats
import nats.errors

QUEUE_GROUP = "zs-workers"  # every worker of a subject joins this queue group


def subject(name: str) -> str:
    return f"zs.logic.{name}"  # the default subject of a routed command


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nats", default="nats://127.0.0.1:4222")
    ap.add_argument("--durable", action="store_true", help="also serve the durable command 'square'")
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
    durable = asyncio.create_task(serve_durable(nc, "square")) if args.durable else None

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if durable:
        durable.cancel()
    await nc.drain()


def stream_name(subj: str) -> str:
    # ZS_LOGIC_ + the subject with every character outside [A-Za-z0-9_-] replaced by "_"
    return "ZS_LOGIC_" + "".join(c if c.isalnum() or c in "_-" else "_" for c in subj)


async def serve_durable(nc, name: str) -> None:
    """Pull from the JetStream consumer the server created, answer to Zs-Reply-To, then ack."""
    js = nc.jetstream()
    subj = subject(name)
    while True:  # the server creates the stream and consumer when it routes the subject
        try:
            sub = await js.pull_subscribe_bind(consumer="zs-workers", stream=stream_name(subj))
            await js.consumer_info(stream_name(subj), "zs-workers")
            break
        except Exception:
            await asyncio.sleep(0.2)

    async def presence(msg) -> None:  # lets the server know a worker is there
        await msg.respond(b"")

    await nc.subscribe("_ZS.presence." + subj, queue=QUEUE_GROUP, cb=presence)
    await nc.flush()
    print(f"python worker: durable subject {subj} bound", flush=True)
    while True:
        try:
            msgs = await sub.fetch(batch=16, timeout=1)
        except asyncio.TimeoutError:
            continue
        except nats.errors.TimeoutError:
            continue
        for msg in msgs:
            h = msg.headers or {}
            answer_headers = {"Zs-Request-Id": h.get("Zs-Request-Id", "")}
            deadline = int(h.get("Zs-Deadline", "0"))
            if deadline and time.time() * 1000 > deadline:
                await msg.ack()  # the caller has had ZS_TIMEOUT already
                continue
            try:
                body = str(int(msg.data.decode("utf-8")) ** 2)
            except ValueError as e:
                answer_headers["Zs-Error-Code"] = "APP_BAD_NUMBER"
                body = str(e)
            reply_to = h.get("Zs-Reply-To")
            if reply_to:
                await nc.publish(reply_to, body.encode("utf-8"), headers=answer_headers)
            await msg.ack()  # after the answer: a crash in between reruns it, the server keeps one answer


if __name__ == "__main__":
    asyncio.run(main())
