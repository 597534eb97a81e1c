"""A small bridge on mautrix-python (PyPI), driven by test/clients/mautrix.test.ts.

Against the Commons at HS_URL it makes its bot and a ghost (a virtual user) through the
appservice API, gives the ghost a device (MSC4190), creates a room, has the ghost join and send
a message with a massaged timestamp, reads /joined_members, then waits for what the test's human
user does (a message, typing, a to-device message) to arrive in transactions. Each step is
printed as one JSON line.
"""

import asyncio
import json
import os

from mautrix.appservice import AppService
from mautrix.types import EventType, RoomCreatePreset, UserID


def say(**fields):
    print(json.dumps(fields), flush=True)


async def main():
    env = os.environ
    human = env["HUMAN"]
    az = AppService(
        server=env["HS_URL"],
        domain="test.local",
        as_token=env["AS_TOKEN"],
        hs_token=env["HS_TOKEN"],
        bot_localpart="mxbot",
        id="mautrix",
        ephemeral_events=True,
        encryption_events=True,
    )
    seen = {name: asyncio.Event() for name in ("message", "typing", "to_device", "otk")}

    @az.matrix_event_handler
    async def on_event(evt):
        if evt.type == EventType.ROOM_MESSAGE and evt.sender == human:
            say(message=evt.content.body)
            seen["message"].set()
        elif evt.type == EventType.TYPING and human in evt.content.user_ids:
            say(typing=evt.content.user_ids)
            seen["typing"].set()

    async def on_to_device(evt):
        say(to_device={"sender": evt.sender, "type": str(evt.type), "to": evt.to_device_id})
        seen["to_device"].set()

    async def on_otk(counts):
        say(otk={user: {dev: c.signed_curve25519 for dev, c in devs.items()} for user, devs in counts.items()})
        seen["otk"].set()

    az.to_device_handler = on_to_device
    az.otk_handler = on_otk
    await az.start(host="127.0.0.1", port=int(env["PORT"]))
    try:
        bot = az.intent
        await bot.ensure_registered()
        ghost = bot.user(UserID("@_mx_ghost:test.local"))
        await ghost.ensure_registered()
        await ghost.create_device_msc4190("MXGHOST", "mautrix ghost")
        whoami = await ghost.whoami()
        await ghost.upload_keys(one_time_keys={"signed_curve25519:AAAA": {"key": "x"}})
        room = await bot.create_room(preset=RoomCreatePreset.PUBLIC)
        await ghost.ensure_joined(room)
        event_id = await ghost.send_text(room, "from the bridge", timestamp=int(env["TS"]))
        members = await bot.get_joined_members(room)
        say(
            room_id=room,
            event_id=event_id,
            device=whoami.device_id,
            members=sorted(members.keys()),
        )
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in seen.values())), 60)
        say(done=True)
    finally:
        await az.stop()


asyncio.run(main())
