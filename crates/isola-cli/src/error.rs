//! Which failures are the user's and which are Isola's: the one place that maps an error to
//! the process's exit code (see [`crate::exit`]).

/// Marks an error as caused by what the user gave Isola (arguments, the config, files):
/// exit code 2. It displays as the error it wraps.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct UserInput(anyhow::Error);

/// `e`, marked as the user's input being wrong.
pub fn user_input(e: impl Into<anyhow::Error>) -> anyhow::Error {
    UserInput(e.into()).into()
}

/// `?` with the error marked as the user's input being wrong.
pub trait UserInputExt<T> {
    fn user_input(self) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> UserInputExt<T> for Result<T, E> {
    fn user_input(self) -> anyhow::Result<T> {
        self.map_err(user_input)
    }
}

/// The exit code for a command that ended with `e`: [`crate::exit::USAGE`] when the user's
/// input is wrong, [`crate::exit::INTERNAL`] when Isola itself failed.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    let users = e.chain().any(|cause| {
        cause.is::<UserInput>()
            || cause.is::<isola_config::ConfigError>()
            || cause.is::<isola_agent::ConfigError>()
            || cause.is::<isola_server::ServeError>()
    });
    if users {
        crate::exit::USAGE
    } else {
        crate::exit::INTERNAL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_errors_and_isolas() {
        let e = user_input(anyhow::anyhow!("no such file"));
        assert_eq!(exit_code(&e), crate::exit::USAGE);
        assert_eq!(e.to_string(), "no such file");
        let wrapped = anyhow::Error::from(isola_server::ServeError::EmptyToken).context("serving");
        assert_eq!(exit_code(&wrapped), crate::exit::USAGE);
        assert_eq!(
            exit_code(&anyhow::anyhow!("a worker died")),
            crate::exit::INTERNAL
        );
    }
}
