//! Everything the HTTP code reads off a socket: response and request heads, chunked bodies,
//! percent-encoding, the daemon's request reader (limits and status codes), its JSON bodies
//! and its --config file.
#![no_main]

use std::io::{BufReader, Read};

use edge_ecli::daemon::{api, config, server};
use edge_ecli::http;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(h) = http::parse_head(rest) {
                let _ = (
                    h.status(),
                    h.content_length(),
                    h.is_chunked(),
                    h.header("location"),
                );
            }
            let mut r = BufReader::new(rest);
            if let Ok(h) = http::read_head(&mut r) {
                let _ = h.content_length();
                // What follows the head, as a chunked body, bounded.
                let mut body = Vec::new();
                let _ = http::Chunked::new(r).take(1 << 20).read_to_end(&mut body);
            }
        }
        1 => {
            let mut r = BufReader::new(rest);
            if let Ok(req) = server::read_request(&mut r, server::Caller::Scraper, None) {
                let _ = req.query("follow");
                let _ = api::check_body(&req.body);
            }
            // The same head for a TCP listener: the token is checked as its header arrives.
            let mut r = BufReader::new(rest);
            let _ = server::read_request(&mut r, server::Caller::Remote, Some(b"0123456789abcdef"));
            let s = String::from_utf8_lossy(rest);
            if let Some(d) = http::percent_decode(&s) {
                let _ = http::percent_encode(&d);
            }
        }
        2 => {
            let _ = api::check_body(rest);
        }
        _ => {
            let _ = config::parse(rest, "fuzz.json", std::path::Path::new("/etc"));
        }
    }
});
