//! `agent`: placeholder binary until the agent issue lands.

fn main() -> std::process::ExitCode {
    eprintln!(
        "agent: not implemented yet (see the agent issue); the identity server is `identity-server`"
    );
    std::process::ExitCode::FAILURE
}
