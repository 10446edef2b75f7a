//! The trait a room plugin implements: [`RoomService`].

use std::time::Duration;

use crate::{
    ClientId, ClientInfo, DisconnectReason, HttpRequest, HttpResponse, InitInfo, Message,
    Rejection, Room, RoomChange, TimerId,
};

/// The behaviour of one room.
///
/// The host creates one value of the implementing type per room, with
/// `Default::default()`, right before calling [`init`](RoomService::init),
/// and drops it when the room is disposed. Callbacks run one at a time, never
/// concurrently, so `&mut self` is all the synchronisation a service needs.
/// Every callback has a no-op default, so implement only what you use.
///
/// Register the type with [`#[room_service]`](crate::room_service); a crate
/// (one wasm component) has exactly one room service.
///
/// A panic in a callback aborts the room: the host logs the panic message as
/// the reason and disposes of the room, closing its clients.
///
/// ```
/// use roomhost_sdk::{ClientId, Message, Room, RoomService, room_service};
///
/// /// Echoes every frame back to its sender.
/// #[derive(Default)]
/// #[room_service]
/// struct Echo;
///
/// impl RoomService for Echo {
///     fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
///         room.send(client, message);
///     }
/// }
/// ```
pub trait RoomService: Default + 'static {
    /// Whether the service has a lobby: an instance, initialised with
    /// [`InitInfo::lobby`] set, that receives the clients connecting to the
    /// service root (`/ws/{service}`). Without one (the default), the root
    /// answers 404 and every client names its room in the URL.
    /// [`LobbyAndRooms`](crate::LobbyAndRooms) gives the lobby and the rooms
    /// their own types; a service that handles both in one type sets this
    /// to `true` and checks [`InitInfo::lobby`].
    const LOBBY: bool = false;

    /// How long a client whose connection was lost stays a member, waiting
    /// to reconnect. Zero (the default) turns reconnection off: a lost
    /// connection is `disconnect(Lost)` at once.
    ///
    /// With a grace period, the host gives each client a
    /// [`resume_token`](ClientInfo::resume_token). When its connection is
    /// lost (not closed by the client, not kicked), the service gets
    /// `disconnect(client, Suspended)`; frames sent to the client meanwhile
    /// are kept (up to the host's `max_replay_frames`/`max_replay_bytes`).
    /// A new connection with `?roomhost_resume=TOKEN` within the period
    /// takes the same client id, gets the kept frames, and the service gets
    /// [`reconnect`](RoomService::reconnect). Otherwise `disconnect(client,
    /// Lost)` follows. The host caps the period (`max_reconnect_grace`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use roomhost_sdk::{ClientId, ClientInfo, Rejection, Room, RoomService, room_service};
    ///
    /// #[derive(Default)]
    /// #[room_service]
    /// struct Game;
    ///
    /// impl RoomService for Game {
    ///     const RECONNECT_GRACE: Duration = Duration::from_secs(30);
    ///
    ///     fn connect(&mut self, room: &mut Room<'_>, client: &ClientInfo) -> Result<(), Rejection> {
    ///         if let Some(token) = &client.resume_token {
    ///             room.send(client.id, format!("resume:{token}"));
    ///         }
    ///         Ok(())
    ///     }
    ///
    ///     fn reconnect(&mut self, room: &mut Room<'_>, client: ClientId, resume_token: &str) {
    ///         room.send(client, format!("resume:{resume_token}"));
    ///     }
    /// }
    /// ```
    const RECONNECT_GRACE: Duration = Duration::ZERO;

    /// Called once, before any other callback, when the room is created.
    ///
    /// Returning `Err(reason)` refuses to start: the room is disposed and
    /// the client whose arrival created it is closed with code 1011 and the
    /// reason. For the lobby, which starts with the server, `roomhost
    /// serve` exits with the reason. Use it for a configuration the service
    /// cannot run with:
    ///
    /// ```
    /// use roomhost_sdk::{InitInfo, Room, RoomService, room_service};
    ///
    /// #[derive(Default, serde::Deserialize)]
    /// #[serde(default, deny_unknown_fields)]
    /// struct Config {
    ///     max_players: u32,
    /// }
    ///
    /// #[derive(Default)]
    /// #[room_service]
    /// struct Game {
    ///     config: Config,
    /// }
    ///
    /// impl RoomService for Game {
    ///     fn init(&mut self, _room: &mut Room<'_>, info: &InitInfo) -> Result<(), String> {
    ///         self.config = info.config().map_err(|error| format!("bad config: {error}"))?;
    ///         if self.config.max_players == 0 {
    ///             return Err("max_players must be at least 1".into());
    ///         }
    ///         Ok(())
    ///     }
    /// }
    ///
    /// use roomhost_sdk::testing::TestRoom;
    /// let started = TestRoom::<Game>::builder()
    ///     .config(&serde_json::json!({ "max_players": 0 }))
    ///     .try_build();
    /// assert_eq!(started.err().as_deref(), Some("max_players must be at least 1"));
    /// ```
    fn init(&mut self, room: &mut Room<'_>, info: &InitInfo) -> Result<(), String> {
        let _ = (room, info);
        Ok(())
    }

    /// A client wants to join. Returning `Err(rejection)` refuses it: the
    /// host closes the connection with the [`Rejection`]'s close code (1008
    /// unless it names one in `4000..=4999`) and reason. A string converts
    /// into a rejection: `Err("room is full".into())`.
    ///
    /// A client arriving by [transfer](Room::transfer) has
    /// [`handoff`](ClientInfo::handoff) set. Rejecting such a client does
    /// not close it: it goes back to the room that sent it, which receives
    /// `connect` again with [`Handoff::rejected`](crate::Handoff::rejected)
    /// set to the reason.
    ///
    /// The client counts as connected while this runs, so the service can
    /// already [`send`](Room::send) to it (a broadcast reaches it too unless
    /// excluded); if the client is rejected, those frames are delivered before
    /// the close. A [transfer](Room::transfer) of the client asked for here
    /// waits until it is accepted, and is dropped if it is rejected.
    fn connect(&mut self, room: &mut Room<'_>, client: &ClientInfo) -> Result<(), Rejection> {
        let _ = (room, client);
        Ok(())
    }

    /// A frame from a connected client.
    fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
        let _ = (room, client, message);
    }

    /// A client left; it is no longer connected and frames sent to it are
    /// ignored. Not called for rejected clients.
    fn disconnect(&mut self, room: &mut Room<'_>, client: ClientId, reason: DisconnectReason) {
        let _ = (room, client, reason);
    }

    /// A client that was [`Suspended`](DisconnectReason::Suspended) came
    /// back on a new connection, keeping its id; the frames sent to it
    /// meanwhile were delivered first. `resume_token` is its next token (the
    /// one it used is spent). Only with a
    /// [`RECONNECT_GRACE`](RoomService::RECONNECT_GRACE).
    fn reconnect(&mut self, room: &mut Room<'_>, client: ClientId, resume_token: &str) {
        let _ = (room, client, resume_token);
    }

    /// A timer set with [`Room::set_timer`] fired. It is no longer pending, so
    /// the service may set it again.
    fn timer(&mut self, room: &mut Room<'_>, timer: TimerId) {
        let _ = (room, timer);
    }

    /// Lobby only: a room of the service was created, changed its client
    /// count or [info](Room::set_info), or ended. Rooms never receive it.
    ///
    /// Changes are coalesced per room: when several happen before the lobby
    /// gets to them, it receives only the latest (e.g. just `Closed` for a
    /// room whose last client left and which then ended). Each room's latest
    /// state always arrives, and rooms are reported in the order they first
    /// changed.
    fn room_changed(&mut self, room: &mut Room<'_>, change: RoomChange) {
        let _ = (room, change);
    }

    /// An HTTP request addressed to this room
    /// (`GET|POST|PUT|PATCH|DELETE /rooms/{service}/{room}/{path...}`). The default
    /// answers 404. The call may use the [`Room`] like any other callback,
    /// e.g. to broadcast a change made over HTTP to the room's clients.
    ///
    /// ```
    /// use roomhost_sdk::{HttpRequest, HttpResponse, Room, RoomService, room_service};
    ///
    /// #[derive(Default)]
    /// #[room_service]
    /// struct Notes {
    ///     notes: Vec<String>,
    /// }
    ///
    /// impl RoomService for Notes {
    ///     fn request(&mut self, _room: &mut Room<'_>, request: HttpRequest) -> HttpResponse {
    ///         match (request.method.as_str(), request.path.as_str()) {
    ///             ("GET", "/notes") => HttpResponse::json(&self.notes),
    ///             _ => HttpResponse::not_found(),
    ///         }
    ///     }
    /// }
    /// ```
    fn request(&mut self, room: &mut Room<'_>, request: HttpRequest) -> HttpResponse {
        let _ = (room, request);
        HttpResponse::not_found()
    }

    /// Saves the room's state before a hot reload (`roomhost dev`), as bytes
    /// that [`restore`](RoomService::restore) in the new version turns back
    /// into a service. The default, `Ok(None)`, means "not supported": the
    /// host then starts the new version fresh and replays `connect` for each
    /// client. An `Err` keeps the room on the old version and is reported.
    ///
    /// With `#[room_service(snapshot = serde)]` the service type itself is
    /// serialized instead and this method is not called; see
    /// [`Reloadable`](crate::Reloadable).
    fn snapshot(&self) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }

    /// Rebuilds the service from a [`snapshot`](RoomService::snapshot) taken
    /// by the previous version, in place of `init`: the room's clients,
    /// timers and info are kept by the host. An `Err` keeps the room on the
    /// old version.
    ///
    /// ```
    /// use roomhost_sdk::{InitInfo, Room, RoomService, room_service};
    ///
    /// #[derive(Default)]
    /// #[room_service]
    /// struct Counter {
    ///     count: u64,
    /// }
    ///
    /// impl RoomService for Counter {
    ///     fn snapshot(&self) -> Result<Option<Vec<u8>>, String> {
    ///         Ok(Some(self.count.to_le_bytes().to_vec()))
    ///     }
    ///
    ///     fn restore(_room: &mut Room<'_>, _info: &InitInfo, snapshot: &[u8]) -> Result<Self, String> {
    ///         let bytes = snapshot.try_into().map_err(|_| "bad snapshot".to_owned())?;
    ///         Ok(Counter { count: u64::from_le_bytes(bytes) })
    ///     }
    /// }
    /// ```
    fn restore(room: &mut Room<'_>, info: &InitInfo, snapshot: &[u8]) -> Result<Self, String> {
        let _ = (room, info, snapshot);
        Err("this service does not restore snapshots".to_owned())
    }
}
