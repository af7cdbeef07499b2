//! The throwaway PostgreSQL server the storage tests of the PostgreSQL
//! backend run on (issue 16): it starts on 127.0.0.1 only, answers, and
//! is gone after.

use cairn_interop::postgres::Postgres;

#[test]
fn a_throwaway_postgres_starts_on_loopback_and_goes_away() {
    let Some(pg) = Postgres::start("a_throwaway_postgres_starts_on_loopback_and_goes_away") else {
        return;
    };
    assert_eq!(pg.psql("SELECT 1 + 1"), "2");
    assert_eq!(pg.psql("SHOW listen_addresses"), "127.0.0.1");
    assert!(
        pg.psql("SHOW server_version").starts_with("15")
            || !pg.psql("SHOW server_version").is_empty()
    );
    let port = pg.port;
    drop(pg);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server is stopped on drop"
    );
}
