//! The events as they come out of the ring: decoded, named, shown in batches, counted per
//! function, up to the limit.

use multiprobe::RingBuf;
use multiprobe::symbols::Function;

use super::args;
use super::event::{Call, Columns, Layout, RawEvent};
use super::ret::RetType;
use crate::error::CliError;
use crate::output::Output;
use crate::stack::KernelSymbols;

/// What has been shown, and how.
pub struct Shown<'a> {
    pub functions: &'a [Function],
    types: &'a [RetType],
    params: Option<&'a [Vec<args::Param>]>,
    columns: Columns,
    json: bool,
    pub limit: Option<u64>,
    pub events: u64,
    pub per_function: Vec<u64>,
    /// The entry time of the first event: the text's TIME column counts from it.
    first_ts: Option<u64>,
    /// What follows the fixed part of each record.
    pub layout: Layout,
    /// With `--kstack`: names the stack's frames.
    pub symbols: Option<&'a KernelSymbols>,
}

impl<'a> Shown<'a> {
    pub fn new(
        functions: &'a [Function],
        types: &'a [RetType],
        params: Option<&'a [Vec<args::Param>]>,
        columns: Columns,
        json: bool,
        limit: Option<u64>,
    ) -> Self {
        Shown {
            functions,
            types,
            params,
            columns,
            json,
            limit,
            events: 0,
            per_function: vec![0; functions.len()],
            first_ts: None,
            layout: Layout::default(),
            symbols: None,
        }
    }

    /// Shows every event in the ring, in one write; true once the limit is reached (the
    /// events past it are taken out of the ring but not shown).
    pub fn drain(&mut self, ring: &mut RingBuf, out: &mut Output) -> Result<bool, CliError> {
        let mut batch = String::new();
        let mut reached = self.limit.is_some_and(|l| self.events >= l);
        while let Some(record) = ring.next_record() {
            if reached {
                continue;
            }
            let Some(mut call) = RawEvent::parse(&record, &self.layout).and_then(|r| {
                let strings = r.strings(&record, &self.layout);
                Call::decode_with_strings(r, &strings, self.functions, self.types, self.params)
            }) else {
                continue;
            };
            if let Some(symbols) = self.symbols {
                call.stack = Some(symbols.names(&RawEvent::stack(&record, &self.layout)));
            }
            let first = *self.first_ts.get_or_insert(call.raw.ts_ns);
            if self.json {
                batch.push_str(&serde_json::to_string(&call.json()).map_err(std::io::Error::other)?);
                batch.push('\n');
            } else {
                batch.push_str(&self.columns.line(&call, first));
            }
            self.events += 1;
            self.per_function[call.raw.function as usize] += 1;
            reached = self.limit.is_some_and(|l| self.events >= l);
        }
        if !batch.is_empty() {
            out.text(&batch)?;
        }
        Ok(reached)
    }
}
