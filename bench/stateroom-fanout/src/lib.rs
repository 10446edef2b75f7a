// Stateroom 0.4.4 counterpart of roomhost's bench/fanout: every frame is
// broadcast to every client, sender included.
use stateroom_wasm::*;

#[stateroom_wasm]
#[derive(Default)]
struct Fanout;

impl StateroomService for Fanout {
    fn message(&mut self, _client: ClientId, message: MessagePayload, ctx: &impl StateroomContext) {
        ctx.send_message(MessageRecipient::Broadcast, message);
    }
}
