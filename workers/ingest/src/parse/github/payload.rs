//! The fields of a GitHub webhook a TicketEvent uses, read with [`lenient`](super::super::lenient)
//! readers: as the `Value` code did, a field of another kind reads as absent, and an `issue`
//! (or `repository`, `sender`, `user`, label) that is not an object as if it were absent.

use serde::de::MapAccess;
use serde_json::Value;

use super::super::ParseError;
use super::super::lenient::{Fields, List, Object, Read, Text, value};

/// The top level of a webhook.
#[derive(Debug, Default)]
pub(super) struct Payload<'a> {
    pub action: Text<'a>,
    pub issue: Object<Issue<'a>>,
    pub repository: Object<Repository<'a>>,
    pub sender: Object<User<'a>>,
}

#[derive(Debug, Default)]
pub(super) struct Issue<'a> {
    pub node_id: Text<'a>,
    /// Ids keep `Value`'s own number formatting (see `id_of`); they are small scalars.
    pub id: Value,
    pub number: Value,
    pub title: Text<'a>,
    pub body: Text<'a>,
    pub state: Text<'a>,
    pub labels: List<Object<Label<'a>>>,
    pub user: Object<User<'a>>,
    pub html_url: Text<'a>,
    pub repository_url: Text<'a>,
}

#[derive(Debug, Default)]
pub(super) struct Repository<'a> {
    pub full_name: Text<'a>,
}

#[derive(Debug, Default)]
pub(super) struct User<'a> {
    pub login: Text<'a>,
}

#[derive(Debug, Default)]
pub(super) struct Label<'a> {
    pub name: Text<'a>,
}

/// The body's fields: `malformed_json` unless the whole body is JSON (the `Value` parser's
/// error), `invalid_payload` unless it is an object.
pub(super) fn read(raw: &str) -> Result<Payload<'_>, ParseError> {
    let Read(Object(payload)) = serde_json::from_str::<Read<Object<Payload<'_>>>>(raw)
        .map_err(|err| ParseError::malformed_json(err.to_string()))?;
    payload.ok_or_else(ParseError::not_an_object)
}

impl<'de> Fields<'de> for Payload<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "action" => self.action = value(map)?,
            "issue" => self.issue = value(map)?,
            "repository" => self.repository = value(map)?,
            "sender" => self.sender = value(map)?,
            _ => value::<(), _>(map)?,
        }
        Ok(())
    }
}

impl<'de> Fields<'de> for Issue<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "node_id" => self.node_id = value(map)?,
            "id" => self.id = map.next_value()?,
            "number" => self.number = map.next_value()?,
            "title" => self.title = value(map)?,
            "body" => self.body = value(map)?,
            "state" => self.state = value(map)?,
            "labels" => self.labels = value(map)?,
            "user" => self.user = value(map)?,
            "html_url" => self.html_url = value(map)?,
            "repository_url" => self.repository_url = value(map)?,
            _ => value::<(), _>(map)?,
        }
        Ok(())
    }
}

impl<'de> Fields<'de> for Repository<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "full_name" => self.full_name = value(map)?,
            _ => value::<(), _>(map)?,
        }
        Ok(())
    }
}

impl<'de> Fields<'de> for User<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "login" => self.login = value(map)?,
            _ => value::<(), _>(map)?,
        }
        Ok(())
    }
}

impl<'de> Fields<'de> for Label<'de> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "name" => self.name = value(map)?,
            _ => value::<(), _>(map)?,
        }
        Ok(())
    }
}
