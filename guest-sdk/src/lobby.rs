//! A service made of a lobby and rooms of different types: [`LobbyAndRooms`].

use std::time::Duration;

use crate::{
    ClientId, ClientInfo, DisconnectReason, HttpRequest, HttpResponse, InitInfo, Message,
    Rejection, Reloadable, Room, RoomChange, RoomService, TimerId,
};

/// A service whose lobby is an `L` and whose rooms are `R`s.
///
/// Services that let clients pick their room by message (a game lobby, a
/// share relay, a watch-party directory) have two kinds of instance: the
/// lobby, which every client reaches at the service root, and the rooms it
/// sends them to with [`Room::transfer`]. `LobbyAndRooms` runs an `L` in the
/// lobby and an `R` in every room, and gives each every callback (the lobby
/// gets `room_changed` too; rooms never do). Each type implements
/// [`RoomService`] on its own, with its own `init`, state and tests.
///
/// Register it with `#[room_service(lobby = L)]` on the room type `R`:
///
/// ```
/// use roomhost_sdk::{ClientId, ClientInfo, LobbyAndRooms, Message, Rejection, Room, RoomService, room_service};
///
/// /// The lobby: sends each client to the table it asks for.
/// #[derive(Default)]
/// pub struct Hall;
///
/// impl RoomService for Hall {
///     fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
///         if let Some(table) = message.as_text() {
///             if let Err(error) = room.transfer(client, Some(table), b"", true) {
///                 room.send(client, error.to_string());
///             }
///         }
///     }
/// }
///
/// /// One table: greets whoever sits down.
/// #[derive(Default)]
/// #[room_service(lobby = Hall)]
/// pub struct Table;
///
/// impl RoomService for Table {
///     fn connect(&mut self, room: &mut Room<'_>, client: &ClientInfo) -> Result<(), Rejection> {
///         room.broadcast(format!("{} sat down", client.id), &[]);
///         Ok(())
///     }
/// }
///
/// /// The service as a whole, for tests.
/// pub type Casino = LobbyAndRooms<Hall, Table>;
///
/// use roomhost_sdk::testing::TestRoom;
/// let mut lobby = TestRoom::<Casino>::builder().lobby(true).build();
/// assert!(lobby.service().lobby().is_some());
/// let guest = lobby.connect();
/// lobby.message(guest, "green");
/// assert_eq!(lobby.take_transfers()[0].to.as_deref(), Some("green"));
/// ```
///
/// Snapshots for hot reload come from `R`'s `#[room_service]` choice for
/// the rooms and from `L`'s [`RoomService::snapshot`] /
/// [`RoomService::restore`] for the lobby.
#[derive(Debug, Default)]
pub enum LobbyAndRooms<L, R> {
    /// Before `init` decided (never seen by a callback: the host calls
    /// `init` first).
    #[default]
    Starting,
    /// The service's lobby.
    Lobby(L),
    /// One room.
    Room(R),
}

impl<L, R> LobbyAndRooms<L, R> {
    /// The lobby's state, if this instance is the lobby.
    pub fn lobby(&self) -> Option<&L> {
        match self {
            Self::Lobby(lobby) => Some(lobby),
            _ => None,
        }
    }

    /// The room's state, if this instance is a room.
    pub fn room(&self) -> Option<&R> {
        match self {
            Self::Room(room) => Some(room),
            _ => None,
        }
    }

    /// The room's state, mutably.
    pub fn room_mut(&mut self) -> Option<&mut R> {
        match self {
            Self::Room(room) => Some(room),
            _ => None,
        }
    }
}

/// Runs `$call` on whichever half this instance is; `$starting` otherwise.
macro_rules! either {
    ($self:ident, $half:ident => $call:expr, $starting:expr) => {
        match $self {
            Self::Lobby($half) => $call,
            Self::Room($half) => $call,
            Self::Starting => $starting,
        }
    };
}

impl<L: RoomService, R: RoomService> RoomService for LobbyAndRooms<L, R> {
    const LOBBY: bool = true;
    // One grace period per service: the longer of the two halves'.
    const RECONNECT_GRACE: Duration =
        if L::RECONNECT_GRACE.as_nanos() > R::RECONNECT_GRACE.as_nanos() {
            L::RECONNECT_GRACE
        } else {
            R::RECONNECT_GRACE
        };

    fn init(&mut self, room: &mut Room<'_>, info: &InitInfo) -> Result<(), String> {
        if info.lobby {
            let mut lobby = L::default();
            lobby.init(room, info)?;
            *self = Self::Lobby(lobby);
        } else {
            let mut instance = R::default();
            instance.init(room, info)?;
            *self = Self::Room(instance);
        }
        Ok(())
    }

    fn connect(&mut self, room: &mut Room<'_>, client: &ClientInfo) -> Result<(), Rejection> {
        either!(self, half => half.connect(room, client), Err("the room is starting".into()))
    }

    fn message(&mut self, room: &mut Room<'_>, client: ClientId, message: Message) {
        either!(self, half => half.message(room, client, message), ())
    }

    fn disconnect(&mut self, room: &mut Room<'_>, client: ClientId, reason: DisconnectReason) {
        either!(self, half => half.disconnect(room, client, reason), ())
    }

    fn timer(&mut self, room: &mut Room<'_>, timer: TimerId) {
        either!(self, half => half.timer(room, timer), ())
    }

    fn reconnect(&mut self, room: &mut Room<'_>, client: ClientId, resume_token: &str) {
        either!(self, half => half.reconnect(room, client, resume_token), ())
    }

    fn room_changed(&mut self, room: &mut Room<'_>, change: RoomChange) {
        if let Self::Lobby(lobby) = self {
            lobby.room_changed(room, change);
        }
    }

    fn request(&mut self, room: &mut Room<'_>, request: HttpRequest) -> HttpResponse {
        either!(self, half => half.request(room, request), HttpResponse::not_found())
    }
}

impl<L: RoomService, R: Reloadable> Reloadable for LobbyAndRooms<L, R> {
    fn save(&self) -> Result<Option<Vec<u8>>, String> {
        match self {
            Self::Lobby(lobby) => lobby.snapshot(),
            Self::Room(room) => room.save(),
            Self::Starting => Ok(None),
        }
    }

    fn load(room: &mut Room<'_>, info: &InitInfo, snapshot: &[u8]) -> Result<Self, String> {
        if info.lobby {
            L::restore(room, info, snapshot).map(Self::Lobby)
        } else {
            R::load(room, info, snapshot).map(Self::Room)
        }
    }
}
