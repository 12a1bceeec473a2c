//! Value parsers for clap whose errors never echo the raw argument: clap's own message
//! quotes the value as typed, so a newline in it would cut the error in two and a terminal
//! escape would reach the screen. Our parsers quote the input themselves, escaped
//! ([`crate::error::quoted`]).

use std::ffi::OsStr;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;

/// A `Fn(&str) -> Result<T, String>` as a clap value parser; the error is the function's
/// message, after the argument's name.
#[derive(Clone)]
pub struct Checked<F>(pub F);

impl<F, T> TypedValueParser for Checked<F>
where
    F: Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static,
    T: Send + Sync + Clone + 'static,
{
    type Value = T;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&clap::Arg>, value: &OsStr) -> Result<T, clap::Error> {
        let name = arg.map(|a| a.to_string()).unwrap_or_else(|| "an argument".into());
        let fail = |message: String| {
            let mut cmd = cmd.clone();
            clap::Error::raw(ErrorKind::ValueValidation, format!("invalid value for {name}: {message}"))
                .format(&mut cmd)
        };
        let text =
            value.to_str().ok_or_else(|| fail(format!("{} is not UTF-8", value.to_string_lossy().escape_debug())))?;
        (self.0)(text).map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Checked;

    #[derive(Debug, Parser)]
    struct Args {
        #[arg(long, value_parser = Checked(|s: &str| if s == "ok" { Ok(s.to_string()) } else { Err(crate::error::quoted(s)) }))]
        value: String,
    }

    #[test]
    fn the_message_is_ours_alone() {
        assert_eq!(Args::try_parse_from(["t", "--value", "ok"]).unwrap().value, "ok");
        let e = Args::try_parse_from(["t", "--value", "a\nb"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
        let text = e.to_string();
        assert!(text.starts_with("error: invalid value for --value <VALUE>: `a\\nb`\n"), "{text}");
        assert_eq!(text.matches('\n').count(), text.lines().count(), "no raw newline: {text}");
    }
}
