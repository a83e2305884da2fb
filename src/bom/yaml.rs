//! A small, bounded reader for the block-YAML subset Hugging Face README front matter uses:
//! nested maps, `- ` lists (of scalars or maps), flow lists `[a, b]`, quoted scalars and
//! comments. Anchors, tags and multi-line scalars (`|`, `>`) are not interpreted (the block is
//! skipped). Anything it cannot read is an error the caller may ignore; it never panics.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    Scalar(String),
    List(Vec<Yaml>),
    Map(BTreeMap<String, Yaml>),
}

impl Yaml {
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(m) => m.get(key),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Yaml::Scalar(s) => Some(s),
            _ => None,
        }
    }
    /// A scalar as a one-element list, a list of scalars as itself.
    pub fn strings(&self) -> Vec<String> {
        match self {
            Yaml::Scalar(s) if !s.is_empty() => vec![s.clone()],
            Yaml::List(l) => l
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            _ => vec![],
        }
    }
    pub fn list(&self) -> &[Yaml] {
        match self {
            Yaml::List(l) => l,
            _ => &[],
        }
    }
}

const MAX_LINES: usize = 20_000;
const MAX_DEPTH: usize = 32;

struct Line<'a> {
    no: usize,
    indent: usize,
    text: &'a str,
}

/// Parse front matter text (without the `---` fences).
pub fn parse(text: &str) -> Result<Yaml, String> {
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if i >= MAX_LINES {
            return Err(format!("more than {MAX_LINES} lines"));
        }
        let t = strip_comment(raw).trim_end();
        if t.trim().is_empty() {
            continue;
        }
        if raw.starts_with('\t') {
            return Err(format!("line {}: tab indentation", i + 1));
        }
        let indent = t.len() - t.trim_start().len();
        lines.push(Line {
            no: i + 1,
            indent,
            text: t.trim_start(),
        });
    }
    let mut pos = 0;
    if lines.is_empty() {
        return Ok(Yaml::Map(BTreeMap::new()));
    }
    let v = block(&lines, &mut pos, lines[0].indent, 0)?;
    if pos < lines.len() {
        return Err(format!("line {}: unexpected indentation", lines[pos].no));
    }
    Ok(v)
}

fn block(lines: &[Line], pos: &mut usize, indent: usize, depth: usize) -> Result<Yaml, String> {
    if depth > MAX_DEPTH {
        return Err("nested too deeply".into());
    }
    if lines[*pos].text.starts_with("- ") || lines[*pos].text == "-" {
        let mut items = Vec::new();
        while *pos < lines.len()
            && lines[*pos].indent == indent
            && lines[*pos].text.starts_with('-')
        {
            let l = &lines[*pos];
            let rest = l.text[1..].trim_start();
            if rest.is_empty() {
                *pos += 1;
                if *pos < lines.len() && lines[*pos].indent > indent {
                    items.push(block(lines, pos, lines[*pos].indent, depth + 1)?);
                } else {
                    items.push(Yaml::Scalar(String::new()));
                }
            } else if key_value(rest).is_some() {
                // `- key: v` starts a map whose other keys sit at the column after "- ".
                let col = indent + (l.text.len() - rest.len());
                items.push(map(lines, pos, col, Some(rest), depth + 1)?);
            } else {
                items.push(scalar_or_flow(rest));
                *pos += 1;
            }
        }
        Ok(Yaml::List(items))
    } else {
        map(lines, pos, indent, None, depth)
    }
}

fn map(
    lines: &[Line],
    pos: &mut usize,
    indent: usize,
    first: Option<&str>,
    depth: usize,
) -> Result<Yaml, String> {
    let mut m = BTreeMap::new();
    let mut first = first;
    while *pos < lines.len() {
        let l = &lines[*pos];
        let text = match first.take() {
            Some(t) => t,
            None => {
                if l.indent != indent || l.text.starts_with("- ") {
                    break;
                }
                l.text
            }
        };
        let (k, v) =
            key_value(text).ok_or_else(|| format!("line {}: expected `key: value`", l.no))?;
        *pos += 1;
        let val = if v.is_empty() {
            if *pos < lines.len()
                && (lines[*pos].indent > indent
                    || (lines[*pos].indent == indent && lines[*pos].text.starts_with("- ")))
            {
                block(lines, pos, lines[*pos].indent, depth + 1)?
            } else {
                Yaml::Scalar(String::new())
            }
        } else if v == "|" || v == ">" || v.starts_with("|") || v.starts_with('>') {
            let mut s = Vec::new();
            while *pos < lines.len() && lines[*pos].indent > indent {
                s.push(lines[*pos].text);
                *pos += 1;
            }
            Yaml::Scalar(s.join(if v.starts_with('|') { "\n" } else { " " }))
        } else {
            scalar_or_flow(v)
        };
        m.insert(k, val);
    }
    Ok(Yaml::Map(m))
}

fn key_value(text: &str) -> Option<(String, &str)> {
    let (k, v) = if let Some(q) = text.strip_prefix('"') {
        let end = q.find('"')?;
        let rest = q[end + 1..].strip_prefix(':')?;
        (q[..end].to_string(), rest)
    } else {
        let i = text
            .find(": ")
            .or_else(|| text.strip_suffix(':').map(|s| s.len()))?;
        let k = &text[..i];
        if k.contains(['[', '{', '"', '\'']) {
            return None;
        }
        (k.trim().to_string(), &text[i + 1..])
    };
    Some((k, v.trim()))
}

fn scalar_or_flow(v: &str) -> Yaml {
    let v = v.trim();
    if let Some(inner) = v.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        return Yaml::List(
            inner
                .split(',')
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(|s| Yaml::Scalar(unquote(s)))
                .collect(),
        );
    }
    Yaml::Scalar(unquote(v))
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return s[1..s.len() - 1].to_string();
        }
    }
    s.to_string()
}

/// `#` starts a comment at line start or after whitespace, outside quotes.
fn strip_comment(line: &str) -> &str {
    let b = line.as_bytes();
    let mut quote: Option<u8> = None;
    for i in 0..b.len() {
        match (quote, b[i]) {
            (None, b'"' | b'\'') => quote = Some(b[i]),
            (Some(q), c) if c == q => quote = None,
            (None, b'#') if i == 0 || b[i - 1].is_ascii_whitespace() => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Split a README into (front matter, body); None when it has no `---` block at the top.
pub fn front_matter(readme: &str) -> Option<(&str, &str)> {
    let rest = readme
        .strip_prefix("---\n")
        .or_else(|| readme.strip_prefix("---\r\n"))?;
    let mut off = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            return Some((&rest[..off], &rest[off + line.len()..]));
        }
        off += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugging_face_card() {
        let text = r#"license: apache-2.0 # the license
language:
- en
datasets: [imdb, "sst2"]
pipeline_tag: text-classification
base_model: "google-bert/bert-base-uncased"
model-index:
- name: my-model
  results:
  - task:
      type: text-classification
    dataset:
      name: IMDB
      type: imdb
      split: test
    metrics:
    - type: accuracy
      value: 0.93
    - type: f1
      value: 0.92
widget:
  - text: "hello: world"
"#;
        let y = parse(text).unwrap();
        assert_eq!(y.get("license").unwrap().as_str(), Some("apache-2.0"));
        assert_eq!(y.get("language").unwrap().strings(), vec!["en"]);
        assert_eq!(y.get("datasets").unwrap().strings(), vec!["imdb", "sst2"]);
        let r = &y.get("model-index").unwrap().list()[0]
            .get("results")
            .unwrap()
            .list()[0];
        assert_eq!(
            r.get("dataset").unwrap().get("split").unwrap().as_str(),
            Some("test")
        );
        let m = r.get("metrics").unwrap().list();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].get("value").unwrap().as_str(), Some("0.92"));
        assert_eq!(
            y.get("widget").unwrap().list()[0]
                .get("text")
                .unwrap()
                .as_str(),
            Some("hello: world")
        );
    }

    /// Fuzz smoke over the fixture card: prefixes and byte mutations never panic.
    #[test]
    fn mutated_cards_never_panic() {
        let text = include_str!("../../testdata/bom/model/README.md");
        let b = text.as_bytes();
        for cut in 0..b.len() {
            if let Ok(t) = std::str::from_utf8(&b[..cut]) {
                let mut f = crate::bom::modelcard::ModelFacts::default();
                crate::bom::modelcard::from_readme(t, &mut f);
            }
        }
        let mut seed = 0x1234_5678_9abc_def1u64;
        for _ in 0..500 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut m = b.to_vec();
            let i = (seed as usize) % m.len();
            const CH: &[u8] = b"-: \n[]'\"#|>\t";
            m[i] = CH[(seed >> 32) as usize % CH.len()];
            if let Ok(t) = std::str::from_utf8(&m) {
                let mut f = crate::bom::modelcard::ModelFacts::default();
                crate::bom::modelcard::from_readme(t, &mut f);
            }
        }
    }

    #[test]
    fn front_matter_split() {
        let (fm, body) = front_matter("---\na: 1\n---\n# Title\n").unwrap();
        assert_eq!(fm, "a: 1\n");
        assert_eq!(body, "# Title\n");
        assert!(front_matter("# no front matter\n").is_none());
    }

    #[test]
    fn hostile_input_does_not_panic() {
        for t in [
            "- - - -",
            ":",
            "a:\n  - b: [\n",
            "\"a",
            "a: 'b",
            "- \n-\n  x",
            "  a: 1\nb: 2",
        ] {
            let _ = parse(t);
        }
        let deep: String = (0..100).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        assert!(parse(&deep).is_err());
    }
}
