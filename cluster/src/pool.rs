//! [`Pool`]: at most `pool_size` open connections to the cluster database,
//! shared by the storage thread, room loads, claims and lease renewals.
//! A connection that broke is dropped and a new one opened on next use.

use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use postgres::{Client, NoTls};

/// Open connections, bounded.
pub(crate) struct Pool {
    config: postgres::Config,
    size: usize,
    state: Mutex<State>,
    freed: Condvar,
}

#[derive(Default)]
struct State {
    idle: Vec<Client>,
    /// Connections handed out (or being opened).
    out: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// A connection from the pool; back into it when dropped.
pub(crate) struct Conn<'a> {
    pool: &'a Pool,
    client: Option<Client>,
}

impl Pool {
    /// A pool of at most `size` connections to `config` (none opened yet).
    pub(crate) fn new(config: postgres::Config, size: usize) -> Pool {
        Pool {
            config,
            size: size.max(1),
            state: Mutex::new(State::default()),
            freed: Condvar::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection: an idle one, a new one while fewer than `size` are
    /// out, else the next one given back.
    pub(crate) fn get(&self) -> Result<Conn<'_>, postgres::Error> {
        let mut state = self.state();
        loop {
            while let Some(client) = state.idle.pop() {
                if !client.is_closed() {
                    state.out += 1;
                    return Ok(Conn {
                        pool: self,
                        client: Some(client),
                    });
                }
            }
            if state.out < self.size {
                break;
            }
            state = self
                .freed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.out += 1;
        drop(state);
        match self.config.connect(NoTls) {
            Ok(client) => Ok(Conn {
                pool: self,
                client: Some(client),
            }),
            Err(error) => {
                self.state().out -= 1;
                self.freed.notify_one();
                Err(error)
            }
        }
    }
}

impl Deref for Conn<'_> {
    type Target = Client;

    fn deref(&self) -> &Client {
        // Present from creation until drop.
        self.client.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let mut state = self.pool.state();
        state.out -= 1;
        if let Some(client) = self.client.take()
            && !client.is_closed()
        {
            state.idle.push(client);
        }
        drop(state);
        self.pool.freed.notify_one();
    }
}
