//! The benchmark workload: pure broadcast fan-out.
//!
//! Every frame a client sends, text or binary, is broadcast unchanged to
//! every client of the room, the sender included. Nothing else happens on
//! that path (no parsing, no `set-info`), so a benchmark measures the host:
//! the connection, the room actor, the call into the room and the fan-out
//! into the client queues. This is the protocol `roomhost loadtest` expects.
//!
//! The same source runs as a wasm plugin (`fanout.wasm`) under `roomhost
//! serve` and natively under `roomhost-baseline`, which is how the cost of
//! the sandbox is measured.

use roomhost_sdk::{ClientId, Message, Room, RoomService, room_service};

/// The room service: stateless.
#[derive(Debug, Default)]
#[room_service]
pub struct Fanout;

impl RoomService for Fanout {
    fn message(&mut self, room: &mut Room<'_>, _client: ClientId, message: Message) {
        room.broadcast(message, &[]);
    }
}

#[cfg(test)]
mod tests {
    use roomhost_sdk::testing::TestRoom;

    use super::Fanout;

    #[test]
    fn every_frame_reaches_everyone_sender_included() {
        let mut room = TestRoom::<Fanout>::new();
        let alice = room.connect();
        let bob = room.connect();
        room.message(alice, "hi");
        assert_eq!(room.take_sent(alice), ["hi"]);
        assert_eq!(room.take_sent(bob), ["hi"]);
    }
}
