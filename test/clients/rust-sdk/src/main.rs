//! Element X's engine against Commons, driven by test/clients/rust-sdk.test.ts.
//!
//! Reads COMMONS_URL, COMMONS_USER, COMMONS_PASSWORD, COMMONS_ROOM (a room the user is in),
//! COMMONS_MESSAGE (a body to send there). Prints one line per step, `STEP value`, which the
//! test reads: LOGGED_IN, APPEARED (the room's name the SDK had cached when the room entered the
//! list, `-` for none: the room is in the list before its first response is applied), ROOM
//! (each room of the list, `id<TAB>name`, once the response that brought the room in has been
//! processed), MEMBER, SENT, DONE. Any failure exits non-zero with the error on stderr.
use std::{env, time::Duration};

use tokio::sync::watch;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{pin_mut, StreamExt};
use matrix_sdk::{
    ruma::{events::room::message::RoomMessageEventContent, OwnedRoomId},
    Client, RoomMemberships,
};
use matrix_sdk_ui::{
    eyeball_im::Vector,
    room_list_service::{filters::new_filter_non_left, RoomListItem},
    RoomListService,
};

fn var(name: &str) -> Result<String> {
    env::var(name).with_context(|| format!("{name} is not set"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let url = var("COMMONS_URL")?;
    let user = var("COMMONS_USER")?;
    let password = var("COMMONS_PASSWORD")?;
    let room_id: OwnedRoomId = var("COMMONS_ROOM")?.try_into().map_err(|e| anyhow!("room id: {e}"))?;
    let message = var("COMMONS_MESSAGE")?;

    let client = Client::builder().homeserver_url(&url).build().await?;
    client
        .matrix_auth()
        .login_username(&user, &password)
        .initial_device_display_name("commons rust-sdk check")
        .await?;
    println!("LOGGED_IN {}", client.user_id().map(|u| u.to_string()).unwrap_or_default());

    let service = RoomListService::new(client.clone()).await?;
    let sync = service.sync();
    pin_mut!(sync);
    // How many sync responses the SDK has processed in full.
    let (processed, responses) = watch::channel(0u64);
    let work = run(&service, &room_id, &message, responses);
    pin_mut!(work);
    let outcome = tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            tokio::select! {
                result = &mut work => return result,
                step = sync.next() => match step {
                    Some(Ok(())) => processed.send_modify(|n| *n += 1),
                    Some(Err(error)) => bail!("sliding sync failed: {error}"),
                    None => bail!("sliding sync stopped"),
                },
            }
        }
    })
    .await
    .map_err(|_| anyhow!("timed out"))?;
    outcome?;
    println!("DONE");
    Ok(())
}

async fn run(
    service: &RoomListService,
    room_id: &OwnedRoomId,
    message: &str,
    mut responses: watch::Receiver<u64>,
) -> Result<()> {
    // The room list, as Element X draws it: all non-left rooms, sorted by the SDK.
    let all_rooms = service.all_rooms().await?;
    let (entries, controller) = all_rooms.entries_with_dynamic_adapters(50);
    controller.set_filter(Box::new(new_filter_non_left()));
    pin_mut!(entries);
    let mut rooms: Vector<RoomListItem> = Vector::new();
    while !rooms.iter().any(|room| room.room_id() == &**room_id) {
        let diffs = entries.next().await.ok_or_else(|| anyhow!("room list ended"))?;
        for diff in diffs {
            diff.apply(&mut rooms);
        }
    }
    // The SDK puts a room in the list as it creates it, while the response that brought it is
    // still being applied: a name computed now is "Empty Room". Wait for that response.
    let seen = *responses.borrow();
    for room in rooms.iter() {
        let early = room.cached_display_name().map(|n| n.to_string());
        println!("APPEARED {}\t{}", room.room_id(), early.as_deref().unwrap_or("-"));
    }
    responses.wait_for(|n| *n > seen).await?;
    for room in rooms.iter() {
        let name = room.display_name().await.map(|n| n.to_string()).unwrap_or_default();
        println!("ROOM {}\t{}", room.room_id(), name);
    }

    // Open the room: subscribe to it, read its members, send a message.
    service.subscribe_to_rooms(&[&**room_id]).await;
    let room = service.room(room_id)?;
    for member in room.members(RoomMemberships::JOIN).await? {
        println!("MEMBER {}", member.user_id());
    }
    let response = room.send(RoomMessageEventContent::text_plain(message)).await?;
    println!("SENT {}", response.response.event_id);
    Ok(())
}
