// SPDX-License-Identifier: GPL-2.0
//! Enough of the shell's grammar to find the commands in a doc's code
//! block: continuations, prompts, comments, quotes, `$(...)`, operators,
//! redirections, here-documents, and the wrappers before a program.

/// A command the docs run: the tool's words after its name, or make's
/// words after `make`.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    Tool(Vec<String>),
    Make(Vec<String>),
}

/// A word of a command line, or an operator between commands.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    /// `|`, `||`, `&&`, `;`, `&`.
    Op,
    /// `>`, `>>`, `<`, `2>`, `&>`, ... : the next word is its target.
    Redirect,
    /// `<<WORD`: a here-document ending at a line `WORD`.
    HereDoc(String),
}

/// The command lines of a block of language `lang`, each with the number
/// of its first line, its text, and what it runs.
pub fn commands_of(lang: &str, lines: &[(usize, String)]) -> Vec<(usize, String, Invocation)> {
    let lang = lang.split_whitespace().next().unwrap_or("");
    let session = match lang {
        "sh" | "bash" | "shell" => false,
        "console" => true,
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let (start, first) = &lines[i];
        i += 1;
        let mut line = first.trim().to_string();
        if !session {
            if let Some(rest) = line.strip_prefix("$ ") {
                line = rest.to_string();
            }
        } else {
            match line.strip_prefix("$ ").or_else(|| line.strip_prefix("# ")) {
                Some(rest) => line = rest.to_string(),
                None => continue, // output
            }
        }
        while line.ends_with('\\') && i < lines.len() {
            line.pop();
            line.push(' ');
            line.push_str(lines[i].1.trim());
            i += 1;
        }
        let tokens = tokenize(&line);
        for t in &tokens {
            if let Token::HereDoc(end) = t {
                while i < lines.len() && lines[i].1.trim() != end {
                    i += 1;
                }
                i += 1;
            }
        }
        for cmd in split(tokens) {
            out.extend(
                invocation(&cmd)
                    .into_iter()
                    .map(|inv| (*start, line.clone(), inv)),
            );
        }
    }
    out
}

/// What one simple command runs, if it is the tool or make (or `sh -c`
/// of a script that runs them: the first such command of the script).
fn invocation(words: &[String]) -> Vec<Invocation> {
    let mut w = words;
    let mut wrapped = false;
    loop {
        match w.first().map(String::as_str) {
            Some("sudo" | "env" | "nice" | "exec" | "command") => w = &w[1..],
            Some("taskset") => w = &w[w.len().min(3)..],
            Some("timeout") => w = &w[w.len().min(2)..],
            // A wrapper's own option (`sudo -E`).
            Some(a) if wrapped && a.starts_with('-') => w = &w[1..],
            Some(a) if is_assignment(a) => w = &w[1..],
            _ => break,
        }
        wrapped = true;
    }
    let Some(program) = w.first() else {
        return Vec::new();
    };
    let args = w[1..].to_vec();
    if program == "leaklab" || program.ends_with("/leaklab") {
        vec![Invocation::Tool(args)]
    } else if program.ends_with("try.sh") {
        // scripts/try.sh [its options] MODULE -- CHECK_OPTIONS: leaklab
        // check's options, after its own.
        let check = args.iter().skip_while(|a| *a != "--").skip(1).cloned();
        let words = ["check", "MODULE.ko"].map(String::from).into_iter();
        vec![Invocation::Tool(words.chain(check).collect())]
    } else if program == "make" {
        vec![Invocation::Make(args)]
    } else if matches!(program.as_str(), "sh" | "bash") && args.first().is_some_and(|a| a == "-c") {
        script(args.get(1).map_or("", String::as_str))
    } else {
        Vec::new()
    }
}

/// What a shell script (`sh -c SCRIPT`'s) runs of the tool and make.
pub fn script(text: &str) -> Vec<Invocation> {
    split(tokenize(text))
        .iter()
        .flat_map(|c| invocation(c))
        .collect()
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
    })
}

/// The simple commands of a token list, without their redirections.
fn split(tokens: Vec<Token>) -> Vec<Vec<String>> {
    let mut out = vec![Vec::new()];
    let mut redirected = false;
    for t in tokens {
        match t {
            Token::Op => out.push(Vec::new()),
            Token::Redirect => redirected = true,
            Token::HereDoc(_) => {}
            Token::Word(_) if redirected => redirected = false,
            Token::Word(w) => out.last_mut().unwrap().push(w),
        }
    }
    out.retain(|c| !c.is_empty());
    out
}

/// The tokens of one line: words with their quotes removed, operators,
/// redirections; a `#` at a word's start ends the line.
fn tokenize(line: &str) -> Vec<Token> {
    let chars: Vec<char> = line.chars().collect();
    let mut tokens = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut i = 0;
    let end_word = |word: &mut String, in_word: &mut bool, tokens: &mut Vec<Token>| {
        if *in_word {
            tokens.push(Token::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => end_word(&mut word, &mut in_word, &mut tokens),
            '#' if !in_word => break,
            '\'' => {
                in_word = true;
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    word.push(chars[i]);
                    i += 1;
                }
            }
            '"' => {
                in_word = true;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    word.push(chars[i]);
                    i += 1;
                }
            }
            '\\' if i + 1 < chars.len() => {
                in_word = true;
                word.push(chars[i + 1]);
                i += 1;
            }
            '$' if chars.get(i + 1) == Some(&'(') => {
                in_word = true;
                let mut depth = 0;
                while i < chars.len() {
                    word.push(chars[i]);
                    match chars[i] {
                        '(' => depth += 1,
                        ')' if depth == 1 => break,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    i += 1;
                }
            }
            '|' | ';' | '&' | '<' | '>' => {
                i = operator(&chars, i, &mut word, &mut in_word, &mut tokens);
            }
            _ => {
                in_word = true;
                word.push(c);
            }
        }
        i += 1;
    }
    end_word(&mut word, &mut in_word, &mut tokens);
    tokens
}

/// Reads the operator or redirection at `chars[i]`, after the word before
/// it (a `2` or `&` before `>` belongs to the redirection); returns the
/// index of its last character.
fn operator(
    chars: &[char],
    mut i: usize,
    word: &mut String,
    in_word: &mut bool,
    tokens: &mut Vec<Token>,
) -> usize {
    let c = chars[i];
    let next = chars.get(i + 1).copied();
    let fd = *in_word && word.chars().all(|d| d.is_ascii_digit());
    if *in_word && !(fd && (c == '>' || c == '<')) {
        tokens.push(Token::Word(std::mem::take(word)));
    }
    word.clear();
    *in_word = false;
    match (c, next) {
        ('<', Some('<')) => {
            let rest: String = chars[i + 2..].iter().collect();
            let delim: String = rest
                .trim_start_matches('-')
                .trim()
                .trim_matches(|q| q == '\'' || q == '"')
                .chars()
                .take_while(|ch| ch.is_ascii_alphanumeric() || *ch == '_')
                .collect();
            tokens.push(Token::HereDoc(delim));
            chars.len()
        }
        ('>' | '<', _) | ('&', Some('>')) => {
            tokens.push(Token::Redirect);
            while matches!(chars.get(i + 1), Some('>' | '&')) {
                i += 1;
            }
            // `2>&1`: the target is a descriptor, no word follows.
            if chars.get(i) == Some(&'&') && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
                tokens.pop();
                i += 1;
            }
            i
        }
        ('|' | '&', Some(n)) if n == c => {
            tokens.push(Token::Op);
            i + 1
        }
        _ => {
            tokens.push(Token::Op);
            i
        }
    }
}
