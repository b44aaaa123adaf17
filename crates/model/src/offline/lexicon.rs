//! The offline model's word lists. Lowercase; a term with a space is matched as a phrase,
//! one of five letters or more also as a word prefix ("crash" finds "crashed").

/// A category family: names an enum value may use, and words that point to it.
pub struct Family {
    pub label: &'static str,
    pub names: &'static [&'static str],
    pub words: &'static [&'static str],
}

#[rustfmt::skip]
pub const FAMILIES: &[Family] = &[
    Family {
        label: "billing",
        names: &["billing", "payment", "invoice", "finance", "refund", "subscription"],
        words: &["refund", "invoice", "charge", "billing", "payment", "subscription", "price",
                 "pricing", "receipt", "bill", "paid", "credit card", "overcharged"],
    },
    Family {
        label: "access",
        names: &["access", "account", "login", "auth", "authentication", "permission"],
        words: &["login", "log in", "logon", "password", "access", "sso", "2fa", "mfa", "locked",
                 "permission", "signin", "sign in", "unauthorized", "forbidden"],
    },
    Family {
        label: "outage",
        names: &["outage", "incident", "availability", "downtime"],
        words: &["outage", "down", "unavailable", "unreachable", "incident", "offline",
                 "all users", "nobody can"],
    },
    Family {
        label: "bug",
        names: &["bug", "defect", "error", "technical", "problem"],
        words: &["error", "bug", "exception", "crash", "broken", "fails", "failure", "failed",
                 "failing", "stack trace", "traceback", "not working", "doesn't work", "glitch"],
    },
    Family {
        label: "performance",
        names: &["performance", "latency", "slow"],
        words: &["slow", "latency", "timeout", "performance", "lag", "takes forever", "sluggish"],
    },
    Family {
        label: "security",
        names: &["security", "vulnerability", "abuse", "fraud"],
        words: &["security", "vulnerability", "phishing", "breach", "hacked", "malware",
                 "exploit", "leak", "fraud"],
    },
    Family {
        label: "feature",
        names: &["feature", "enhancement", "improvement", "suggestion", "idea"],
        words: &["feature", "would like", "could you add", "add support", "enhancement",
                 "suggestion", "wish", "improve", "it would be nice"],
    },
    Family {
        label: "question",
        names: &["question", "how_to", "howto", "inquiry", "enquiry", "usage"],
        words: &["how do", "how can", "question", "where can", "is it possible",
                 "documentation", "docs", "wondering"],
    },
];

/// Names of the fallback value when nothing matches.
pub const FALLBACK_NAMES: &[&str] = &[
    "other",
    "general",
    "misc",
    "unknown",
    "none",
    "uncategorized",
];

/// Words that make a ticket urgent (each hit raises the level).
#[rustfmt::skip]
pub const URGENT_WORDS: &[&str] = &[
    "outage", "down", "urgent", "emergency", "critical", "asap", "immediately", "crash",
    "data loss", "breach", "blocker", "production", "all users",
];

/// Words of an ordinary defect.
#[rustfmt::skip]
pub const PROBLEM_WORDS: &[&str] = &[
    "error", "bug", "fail", "broken", "cannot", "can't", "unable", "exception", "wrong",
    "problem", "issue",
];

/// Words of a request that can wait.
#[rustfmt::skip]
pub const CALM_WORDS: &[&str] = &[
    "question", "feature", "suggestion", "typo", "cosmetic", "minor", "when you have time",
    "wondering", "would like",
];

#[rustfmt::skip]
pub const NEGATIVE_WORDS: &[&str] = &[
    "angry", "frustrated", "frustrating", "terrible", "awful", "unacceptable", "disappointed",
    "disappointing", "worst", "annoyed", "annoying", "ridiculous", "horrible", "hate", "upset",
    "furious", "useless", "unhappy", "not happy", "still broken", "again",
];

#[rustfmt::skip]
pub const POSITIVE_WORDS: &[&str] = &[
    "thanks", "thank", "great", "love", "appreciate", "awesome", "excellent", "happy", "glad",
    "wonderful", "perfect", "amazing",
];

/// Enum values naming each sentiment.
pub const NEGATIVE_NAMES: &[&str] = &["negative", "frustrated", "angry", "unhappy", "upset"];
pub const POSITIVE_NAMES: &[&str] = &["positive", "happy", "satisfied", "pleased"];
pub const NEUTRAL_NAMES: &[&str] = &["neutral", "calm", "mixed"];

/// Levels of priority-like enum values: 0 low .. 3 critical.
#[rustfmt::skip]
pub const LEVELS: &[(&str, u8)] = &[
    ("lowest", 0), ("low", 0), ("minor", 0), ("trivial", 0), ("p4", 0), ("sev4", 0),
    ("normal", 1), ("medium", 1), ("moderate", 1), ("p3", 1), ("sev3", 1),
    ("major", 2), ("high", 2), ("p2", 2), ("sev2", 2),
    ("urgent", 3), ("critical", 3), ("blocker", 3), ("highest", 3), ("p1", 3), ("p0", 3),
    ("sev1", 3),
];

/// The label of each level.
pub const LEVEL_NAMES: [&str; 4] = ["low", "medium", "high", "critical"];

/// Stop words per language, for the language guess and to keep keywords meaningful.
#[rustfmt::skip]
pub const STOP_WORDS: &[(&str, &[&str])] = &[
    ("en", &["the", "and", "is", "to", "of", "it", "not", "my", "we", "with", "this", "for",
             "you", "please", "our", "are", "have", "was", "can", "when", "that", "but", "from",
             "after", "been", "since"]),
    ("de", &["der", "die", "das", "und", "ist", "nicht", "ich", "wir", "mit", "bitte", "ein",
             "eine", "zu", "es", "auf", "seit"]),
    ("fr", &["le", "la", "les", "et", "est", "pas", "je", "nous", "avec", "une", "des", "pour",
             "merci", "ne", "sur", "depuis"]),
    ("es", &["el", "los", "las", "y", "es", "yo", "con", "una", "por", "para", "gracias", "que",
             "mi", "desde"]),
    ("pt", &["os", "não", "eu", "com", "uma", "obrigado", "meu", "está", "desde", "nao"]),
    ("it", &["il", "lo", "gli", "è", "non", "io", "con", "per", "grazie", "che", "mio",
             "della"]),
    ("nl", &["het", "en", "niet", "ik", "wij", "met", "een", "voor", "bedankt", "dank",
             "sinds"]),
];

/// Words too common in tickets to be keywords.
#[rustfmt::skip]
pub const EXTRA_STOP_WORDS: &[&str] = &[
    "title", "description", "body", "subject", "hello", "thanks", "thank", "please", "would",
    "could", "there", "they", "them", "their", "what", "which", "your", "will", "just", "also",
    "any", "all", "has", "had", "did", "does", "doing", "into", "out", "about", "then", "than",
    "its", "it's", "i'm", "don't", "can't",
];
