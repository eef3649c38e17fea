//! Just enough of a C lexer for what ecc reads from a source without compiling it: top-level
//! declarations, their doc comments and the structs of a header. Preprocessor lines and
//! ordinary comments are skipped; string and character literals are kept whole so that a
//! brace or `@` inside one is not mistaken for code.

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    /// A string literal's contents (escapes left as written).
    Str(String),
    Punct(u8),
    /// A number or character literal: nothing here reads its value.
    Other,
    /// A doc comment (`///`, `//!`, `/** */`, `/*! */`) with its markers stripped, one entry
    /// per line.
    Doc(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    /// 1-based line where it starts.
    pub line: u32,
}

pub fn lex(src: &str) -> Vec<Token> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1u32;
    // Only whitespace since the last newline: a '#' here starts a preprocessor line.
    let mut at_line_start = true;
    while i < b.len() {
        let c = b[i];
        let start_line = line;
        match c {
            b'\n' => {
                line += 1;
                at_line_start = true;
                i += 1;
                continue;
            }
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'#' if at_line_start => {
                // To the end of the line, following backslash continuations.
                while i < b.len() && b[i] != b'\n' {
                    if b[i] == b'\\' && b.get(i + 1) == Some(&b'\n') {
                        line += 1;
                        i += 1;
                    }
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = b[i..]
                    .iter()
                    .position(|&x| x == b'\n')
                    .map_or(b.len(), |p| i + p);
                let text = &src[i..end];
                let doc = (text.starts_with("///") && !text.starts_with("////"))
                    || text.starts_with("//!");
                if doc && !text[3..].starts_with('<') {
                    let t = text[3..].strip_prefix(' ').unwrap_or(&text[3..]);
                    push_doc(&mut out, vec![t.trim_end().to_string()], start_line);
                }
                i = end;
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let body_start = i + 2;
                let end = src[body_start..]
                    .find("*/")
                    .map_or(b.len(), |p| body_start + p);
                let body = &src[body_start..end];
                line += body.matches('\n').count() as u32;
                let doc = (body.starts_with('*') && !body.starts_with("**") && body != "*")
                    || body.starts_with('!');
                if doc && !body[1..].starts_with('<') {
                    let lines = body[1..]
                        .lines()
                        .map(|l| {
                            let l = l.trim_start();
                            let l = l.strip_prefix('*').unwrap_or(l);
                            l.strip_prefix(' ').unwrap_or(l).trim_end().to_string()
                        })
                        .collect();
                    out.push(Token {
                        tok: Tok::Doc(lines),
                        line: start_line,
                    });
                }
                i = (end + 2).min(b.len());
                at_line_start = false;
                continue;
            }
            b'"' | b'\'' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != c && b[j] != b'\n' {
                    if b[j] == b'\\' {
                        j += 1;
                    }
                    j += 1;
                }
                let j = j.min(b.len());
                let tok = if c == b'"' {
                    Tok::Str(src.get(i + 1..j).unwrap_or("").to_string())
                } else {
                    Tok::Other
                };
                out.push(Token {
                    tok,
                    line: start_line,
                });
                i = (j + 1).min(b.len());
            }
            c if c == b'_' || c.is_ascii_alphabetic() => {
                let j = b[i..]
                    .iter()
                    .position(|&x| !(x == b'_' || x.is_ascii_alphanumeric()))
                    .map_or(b.len(), |p| i + p);
                out.push(Token {
                    tok: Tok::Ident(src[i..j].to_string()),
                    line: start_line,
                });
                i = j;
            }
            c if c.is_ascii_digit() => {
                let j = b[i..]
                    .iter()
                    .position(|&x| !(x == b'.' || x == b'_' || x.is_ascii_alphanumeric()))
                    .map_or(b.len(), |p| i + p);
                out.push(Token {
                    tok: Tok::Other,
                    line: start_line,
                });
                i = j;
            }
            c if c.is_ascii() => {
                out.push(Token {
                    tok: Tok::Punct(c),
                    line: start_line,
                });
                i += 1;
            }
            _ => {
                // Bytes of a non-ASCII character outside literals and comments.
                let len = src[i..].chars().next().map_or(1, char::len_utf8);
                out.push(Token {
                    tok: Tok::Other,
                    line: start_line,
                });
                i += len;
            }
        }
        at_line_start = false;
    }
    out
}

/// Consecutive `///` lines are one comment.
fn push_doc(out: &mut Vec<Token>, lines: Vec<String>, line: u32) {
    if let Some(Token {
        tok: Tok::Doc(prev),
        line: l,
    }) = out.last_mut()
    {
        if *l + prev.len() as u32 == line {
            prev.extend(lines);
            return;
        }
    }
    out.push(Token {
        tok: Tok::Doc(lines),
        line,
    });
}

/// The names of the structs a header defines (`struct NAME {`), in order, each once.
pub fn struct_definitions(src: &str) -> Vec<String> {
    let toks = lex(src);
    let mut names: Vec<String> = Vec::new();
    for w in toks.windows(3) {
        if let [Token {
            tok: Tok::Ident(kw),
            ..
        }, Token {
            tok: Tok::Ident(name),
            ..
        }, Token {
            tok: Tok::Punct(b'{'),
            ..
        }] = w
        {
            if kw == "struct" && !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Tok> {
        lex(src).into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn comments_strings_and_preprocessor_are_not_code() {
        let t = kinds(
            "#include \"x.h\" /* { */\n#define A \\\n  {\n// }\nint a = '{'; char *s = \"}@x\";",
        );
        let idents: Vec<&Tok> = t.iter().filter(|t| matches!(t, Tok::Ident(_))).collect();
        assert_eq!(idents.len(), 4, "{t:?}");
        assert!(t.contains(&Tok::Str("}@x".into())));
        assert!(!t.contains(&Tok::Punct(b'{')));
    }

    #[test]
    fn doc_comments_of_both_kinds_with_lines() {
        let toks = lex(
            "int x;\n/// one\n///two\nint y;\n/** a\n * b\n */\nint z; //< not doc\n/***/ ////x\n",
        );
        let docs: Vec<(Vec<String>, u32)> = toks
            .iter()
            .filter_map(|t| match &t.tok {
                Tok::Doc(l) => Some((l.clone(), t.line)),
                _ => None,
            })
            .collect();
        assert_eq!(docs[0], (vec!["one".to_string(), "two".to_string()], 2));
        assert_eq!(docs[1].0[..2], ["a".to_string(), "b".to_string()]);
        assert_eq!(docs[1].1, 5);
        assert_eq!(docs.len(), 2);
        // Line numbers survive a multi-line comment.
        let z = toks
            .iter()
            .find(|t| t.tok == Tok::Ident("z".into()))
            .unwrap();
        assert_eq!(z.line, 8);
    }

    #[test]
    fn header_structs_in_order_once() {
        let h = "/* struct fake { */\nstruct event { int a; };\nstruct other;\nstruct key {int k;};\nstruct event { };\ntypedef struct { int x; } anon_t;";
        assert_eq!(struct_definitions(h), vec!["event", "key"]);
        assert!(struct_definitions("#define X 1\nint f(void);").is_empty());
    }

    #[test]
    fn unterminated_input_ends_cleanly() {
        for s in ["/* open", "\"open", "'", "#", "///", "/**", "é{"] {
            let _ = lex(s);
        }
    }
}
