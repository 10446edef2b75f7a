//! The `#[room_service]` attribute of [`roomhost-sdk`]. Use it through the
//! SDK's re-export, `roomhost_sdk::room_service`; see the SDK documentation.
//!
//! [`roomhost-sdk`]: https://docs.rs/roomhost-sdk

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Generics, Item, Type};

/// Registers a type as the crate's room service: the wasm component built
/// from this crate exports it to the host.
///
/// Place it on the service type (a struct or an enum) or on its
/// `impl RoomService for Type` block; the item itself is left unchanged. The
/// type must implement `RoomService` (and so `Default`) and cannot be
/// generic.
///
/// A crate (one component) has exactly one room service: a second
/// `#[room_service]` fails to compile with "the name
/// `__roomhost_only_one_room_service_per_crate` is defined multiple times".
///
/// The expansion names the SDK `::roomhost_sdk`, so depend on it under that
/// name (do not rename the dependency). When compiled for anything but
/// `wasm32` (e.g. `cargo test`) nothing is exported, so several plugin crates
/// can be linked into one test binary.
///
/// ```
/// use roomhost_sdk::{RoomService, room_service};
///
/// #[derive(Default)]
/// #[room_service]
/// struct Lobby {
///     players: Vec<u64>,
/// }
///
/// impl RoomService for Lobby {}
/// ```
///
/// To keep the room's state across hot reloads (`roomhost dev`) by
/// serializing the service type with serde, add `snapshot = serde`:
///
/// ```
/// use roomhost_sdk::{RoomService, room_service};
///
/// #[derive(Default, serde::Serialize, serde::Deserialize)]
/// #[room_service(snapshot = serde)]
/// struct Scores {
///     points: Vec<u32>,
/// }
///
/// impl RoomService for Scores {}
/// ```
///
/// Without it, `RoomService::snapshot` and `RoomService::restore` decide
/// (their defaults opt out: the room is restarted and `connect` replayed).
///
/// For a service with a lobby of its own type (see `LobbyAndRooms`), name
/// the lobby's type with `lobby = Type` on the room type: the component then
/// exports `LobbyAndRooms<Lobby, Room>`. Both arguments may be combined.
///
/// ```
/// use roomhost_sdk::{RoomService, room_service};
///
/// #[derive(Default)]
/// struct Hall;
/// impl RoomService for Hall {}
///
/// #[derive(Default, serde::Serialize, serde::Deserialize)]
/// #[room_service(lobby = Hall, snapshot = serde)]
/// struct Table {
///     seats: Vec<u64>,
/// }
///
/// impl RoomService for Table {}
/// ```
///
/// On the impl block instead:
///
/// ```
/// use roomhost_sdk::{RoomService, room_service};
///
/// #[derive(Default)]
/// struct Lobby;
///
/// #[room_service]
/// impl RoomService for Lobby {}
/// ```
#[proc_macro_attribute]
pub fn room_service(attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr = TokenStream2::from(attr);
    let item = TokenStream2::from(item);
    match expand(attr, item.clone()) {
        Ok(tokens) => tokens.into(),
        // Keep the item so that the error is the only one reported.
        Err(err) => {
            let err = err.to_compile_error();
            quote!(#item #err).into()
        }
    }
}

fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let Options { snapshot, lobby } = parse_options(attr)?;
    let parsed: Item = syn::parse2(item.clone())?;
    let service = service_type(&parsed)?;
    let reloadable = match snapshot {
        SnapshotKind::Serde => quote! {
            fn save(&self) -> ::core::result::Result<::core::option::Option<::std::vec::Vec<u8>>, ::std::string::String> {
                ::roomhost_sdk::__private::serde_save(self)
            }
            fn load(
                _room: &mut ::roomhost_sdk::Room<'_>,
                _info: &::roomhost_sdk::InitInfo,
                snapshot: &[u8],
            ) -> ::core::result::Result<Self, ::std::string::String> {
                ::roomhost_sdk::__private::serde_load(snapshot)
            }
        },
        SnapshotKind::ByHand => quote! {
            fn save(&self) -> ::core::result::Result<::core::option::Option<::std::vec::Vec<u8>>, ::std::string::String> {
                <Self as ::roomhost_sdk::RoomService>::snapshot(self)
            }
            fn load(
                room: &mut ::roomhost_sdk::Room<'_>,
                info: &::roomhost_sdk::InitInfo,
                snapshot: &[u8],
            ) -> ::core::result::Result<Self, ::std::string::String> {
                <Self as ::roomhost_sdk::RoomService>::restore(room, info, snapshot)
            }
        },
    };
    // Spanned so that "`X: RoomService` is not satisfied" points at the type.
    let assert_service = quote_spanned! {service.span()=>
        ::roomhost_sdk::__private::assert_room_service::<#service>()
    };
    // With a lobby type, the component exports the pair; the room type
    // keeps its own snapshot choice.
    let (exported, assert_lobby) = match &lobby {
        Some(lobby) => (
            quote!(::roomhost_sdk::LobbyAndRooms<#lobby, #service>),
            quote_spanned! {lobby.span()=>
                #[doc(hidden)]
                const _: () = ::roomhost_sdk::__private::assert_room_service::<#lobby>();
            },
        ),
        None => (quote!(#service), quote!()),
    };

    Ok(quote! {
        #item

        // Named so that a second `#[room_service]` in the crate reports
        // itself: "the name `__roomhost_only_one_room_service_per_crate` is
        // defined multiple times".
        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code)]
        type __roomhost_only_one_room_service_per_crate =
            ::roomhost_sdk::__private::Export<#exported>;

        #[doc(hidden)]
        const _: () = #assert_service;
        #assert_lobby

        impl ::roomhost_sdk::Reloadable for #service {
            #reloadable
        }

        // The generated ABI glue is unsafe; the module keeps the plugin
        // crate's own `unsafe_code` lint (denied or not) for its own code.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[allow(unsafe_code)]
        mod __roomhost_export {
            use super::__roomhost_only_one_room_service_per_crate;
            ::roomhost_sdk::__private::export!(
                __roomhost_only_one_room_service_per_crate
                with_types_in ::roomhost_sdk::bindings
            );
        }
    })
}

/// Where a service's hot-reload snapshot comes from.
enum SnapshotKind {
    /// `RoomService::snapshot` / `restore`.
    ByHand,
    /// `snapshot = serde`: the service type's own serde impls.
    Serde,
}

/// The attribute's arguments.
struct Options {
    snapshot: SnapshotKind,
    /// `lobby = Type`: the type of the service's lobby.
    lobby: Option<Type>,
}

const USAGE: &str = "expected `#[room_service]`, or arguments among `snapshot = serde` and \
                     `lobby = LobbyType`, e.g. `#[room_service(lobby = Lobby, snapshot = serde)]`";

/// Parses the attribute's arguments: `snapshot = serde` and `lobby = Type`,
/// each at most once, in any order.
fn parse_options(attr: TokenStream2) -> syn::Result<Options> {
    let mut options = Options {
        snapshot: SnapshotKind::ByHand,
        lobby: None,
    };
    if attr.is_empty() {
        return Ok(options);
    }
    let span = attr.span();
    let parser =
        syn::punctuated::Punctuated::<syn::MetaNameValue, syn::Token![,]>::parse_terminated;
    let metas =
        syn::parse::Parser::parse2(parser, attr).map_err(|_| syn::Error::new(span, USAGE))?;
    let mut seen_snapshot = false;
    for meta in metas {
        if meta.path.is_ident("snapshot") && !seen_snapshot {
            let is_serde =
                matches!(&meta.value, syn::Expr::Path(path) if path.path.is_ident("serde"));
            if !is_serde {
                return Err(syn::Error::new(
                    meta.value.span(),
                    "`snapshot` takes `serde`",
                ));
            }
            seen_snapshot = true;
            options.snapshot = SnapshotKind::Serde;
        } else if meta.path.is_ident("lobby") && options.lobby.is_none() {
            let syn::Expr::Path(path) = &meta.value else {
                return Err(syn::Error::new(
                    meta.value.span(),
                    "`lobby` takes the lobby's type, e.g. `lobby = Lobby`",
                ));
            };
            options.lobby = Some(Type::Path(syn::TypePath {
                qself: path.qself.clone(),
                path: path.path.clone(),
            }));
        } else {
            return Err(syn::Error::new(meta.path.span(), USAGE));
        }
    }
    Ok(options)
}

/// The service type named by the annotated item.
fn service_type(item: &Item) -> syn::Result<Type> {
    match item {
        Item::Struct(item) => {
            reject_generics(&item.generics)?;
            let ident = &item.ident;
            Ok(syn::parse_quote!(#ident))
        }
        Item::Enum(item) => {
            reject_generics(&item.generics)?;
            let ident = &item.ident;
            Ok(syn::parse_quote!(#ident))
        }
        Item::Impl(item) => {
            let is_room_service = item.trait_.as_ref().is_some_and(|(negative, path, _)| {
                negative.is_none()
                    && path
                        .segments
                        .last()
                        .is_some_and(|segment| segment.ident == "RoomService")
            });
            if !is_room_service {
                return Err(syn::Error::new(
                    impl_header_span(item),
                    "#[room_service] on an impl block expects `impl RoomService for YourType`",
                ));
            }
            reject_generics(&item.generics)?;
            Ok((*item.self_ty).clone())
        }
        other => Err(syn::Error::new(
            item_span(other),
            "#[room_service] applies to the service type (a struct or an enum) \
             or to its `impl RoomService for YourType` block",
        )),
    }
}

fn reject_generics(generics: &Generics) -> syn::Result<()> {
    if generics.params.is_empty() && generics.where_clause.is_none() {
        return Ok(());
    }
    Err(syn::Error::new(
        generics.span(),
        "a room service cannot be generic: the component exports one concrete type",
    ))
}

fn impl_header_span(item: &syn::ItemImpl) -> Span {
    match &item.trait_ {
        Some((_, path, _)) => path.span(),
        None => item.self_ty.span(),
    }
}

/// A span pointing at the item's keyword and name rather than its whole body.
fn item_span(item: &Item) -> Span {
    match item {
        Item::Fn(item) => item.sig.ident.span(),
        Item::Mod(item) => item.ident.span(),
        Item::Trait(item) => item.ident.span(),
        Item::Type(item) => item.ident.span(),
        Item::Union(item) => item.ident.span(),
        Item::Const(item) => item.ident.span(),
        Item::Static(item) => item.ident.span(),
        other => other.span(),
    }
}
