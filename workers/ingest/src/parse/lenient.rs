//! Reading a few fields of a JSON body without building a `Value` of the rest.
//!
//! Each reader is lenient as `Value`'s accessors are: a value of another kind reads as absent
//! (`None`, empty), never as an error, so only malformed JSON fails a body. Everything not
//! read, skipped values included, still goes through serde_json's `deserialize_any`, the
//! same calls a `Value` makes: a body is refused exactly when `Value` refuses it, with the
//! same error. (`IgnoredAny` and `RawValue` skim instead: they accept numbers out of `f64`'s
//! range, lone surrogate escapes and nesting past the recursion limit, which `Value` refuses.)
//! A key given twice keeps its last value, as in a `Value`.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, Error, MapAccess, SeqAccess, Visitor};

/// What a reader makes of each kind of JSON value; the defaults skip it and read as absent.
pub(crate) trait Lenient<'de>: Default {
    /// A string that borrows from the body (it had no escapes).
    fn borrowed(text: &'de str) -> Self {
        Self::transient(text)
    }

    /// A string serde_json unescaped into its scratch buffer.
    fn transient(_text: &str) -> Self {
        Self::default()
    }

    fn seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<Read<()>>()?.is_some() {}
        Ok(Self::default())
    }

    fn map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        while map.next_entry::<Read<()>, Read<()>>()?.is_some() {}
        Ok(Self::default())
    }
}

/// Any value, skipped.
impl Lenient<'_> for () {}

/// `T` as a `Deserialize`, for `next_value` and friends.
pub(crate) struct Read<T>(pub T);

impl<'de, T: Lenient<'de>> Deserialize<'de> for Read<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Visit(PhantomData)).map(Read)
    }
}

/// The next value of `map`, read as `T`.
pub(crate) fn value<'de, T: Lenient<'de>, A: MapAccess<'de>>(map: &mut A) -> Result<T, A::Error> {
    map.next_value::<Read<T>>().map(|read| read.0)
}

/// A string, `None` for any other kind.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Text<'de>(pub Option<Cow<'de, str>>);

impl<'de> Lenient<'de> for Text<'de> {
    fn borrowed(text: &'de str) -> Self {
        Text(Some(Cow::Borrowed(text)))
    }

    fn transient(text: &str) -> Self {
        Text(Some(Cow::Owned(text.to_string())))
    }
}

impl Text<'_> {
    /// The text as `Value::as_str` gives it.
    pub(crate) fn as_str(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Trimmed and non-empty, as `text_at` reads a field.
    pub(crate) fn trimmed(&self) -> Option<String> {
        self.as_str()
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(str::to_string)
    }
}

/// The fields of an object read by [`Object`].
pub(crate) trait Fields<'de>: Default {
    /// Reads the value of `key` from `map` (exactly one `next_value`), or skips it.
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
}

/// An object's fields, `None` for any other kind.
#[derive(Debug, PartialEq)]
pub(crate) struct Object<T>(pub Option<T>);

impl<T> Default for Object<T> {
    fn default() -> Self {
        Object(None)
    }
}

impl<'de, T: Fields<'de>> Lenient<'de> for Object<T> {
    fn map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut fields = T::default();
        while let Some(Read(Text(key))) = map.next_key::<Read<Text<'de>>>()? {
            // JSON keys are strings: `key` is always set.
            fields.field(key.as_deref().unwrap_or_default(), &mut map)?;
        }
        Ok(Object(Some(fields)))
    }
}

/// An array's items, `None` for any other kind.
#[derive(Debug, PartialEq)]
pub(crate) struct List<T>(pub Option<Vec<T>>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(None)
    }
}

impl<'de, T: Lenient<'de>> Lenient<'de> for List<T> {
    fn seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut items = Vec::new();
        while let Some(Read(item)) = seq.next_element::<Read<T>>()? {
            items.push(item);
        }
        Ok(List(Some(items)))
    }
}

struct Visit<T>(PhantomData<T>);

/// Every kind serde_json's `deserialize_any` gives: scalars other than strings read as absent.
impl<'de, T: Lenient<'de>> Visitor<'de> for Visit<T> {
    type Value = T;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E: Error>(self, _: bool) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_i64<E: Error>(self, _: i64) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_u64<E: Error>(self, _: u64) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_i128<E: Error>(self, _: i128) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_u128<E: Error>(self, _: u128) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_f64<E: Error>(self, _: f64) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_unit<E: Error>(self) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_none<E: Error>(self) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_borrowed_str<E: Error>(self, text: &'de str) -> Result<T, E> {
        Ok(T::borrowed(text))
    }

    fn visit_str<E: Error>(self, text: &str) -> Result<T, E> {
        Ok(T::transient(text))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::map(map)
    }
}
