"""Word tokens as datatrove 0.10 sees them, computed with two polars regex passes.

datatrove's Gopher and FineWeb filters split English text with spaCy's blank ``en`` tokenizer
(``datatrove.utils.word_tokenizers.SpaCyTokenizer``; whitespace tokens dropped by ``strip_strings``).
Running spaCy per document is far too slow for the filter path, so this module mirrors the rules of
spaCy 3.8's English tokenizer that matter on web text (``spacy/lang/punctuation.py``,
``spacy/lang/en/punctuation.py``, ``spacy/lang/en/tokenizer_exceptions.py``):

* each whitespace-separated chunk is split on its own: prefixes are stripped from its start and
  suffixes from its end, one at a time; the middle stays whole unless an infix rule splits it;
* prefixes and suffixes are not the same sets: ``-``, ``/``, ``@``, ``|`` are neither (``--debug``,
  ``KWANDE/`` and ``//`` stay whole), ``§ % = $`` only open a token, ``'s`` only closes one;
* a final ``.`` is split off after a digit, a lower-case letter, punctuation or a quote, or after two
  capitals ("ABC." -> "ABC", "."), and kept otherwise ("C.", "U.S."); listed abbreviations keep theirs;
* infixes: hyphens and dashes between letters/digits and a letter, ``+-*^`` between digits, ``.``
  between a lower-case and an upper-case letter, ``,`` between letters, ``:<>=/`` before a letter,
  ellipses and symbols (``\\p{So}``, spaCy's "icons") anywhere;
* contractions from the exception table: ``n't``, ``'s``, and ``'m 're 've 'll 'd`` after pronouns
  and modal verbs ("don't" -> "do", "n't"; "I'm" -> "I", "'m").

Pass 1 (``str.replace_all``) writes a separator (``\\x01``) at every infix/contraction split; pass 2
(``str.extract_all``) reads tokens, prefix/suffix marks one by one. Rust's regex has no look-around,
so each infix rule consumes its right-hand neighbour: "a-b-c" with one-letter parts keeps its second
hyphen (rare). Not mirrored: URL detection beyond ``http(s)://`` and ``www.``, the apostrophe-less
exceptions ("dont", "im"), emoticons, units after numbers other than the common ones.
On the benchmark corpus ~99% of whitespace chunks come out exactly as spaCy splits them.
"""

from __future__ import annotations

import polars as pl

SEP = "\x01"  # split mark written by pass 1; never part of a token

# spaCy's character classes (spacy/lang/char_classes.py), as Rust regex class bodies.
_QUOTES = "'\"”“`‘´’‚,„»«「」『』（）〔〕【】《》〈〉⟦⟧"
_PUNCT = "…,:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪"
_CURRENCY = "$£€¥฿₽﷼₴₠₡₢₣₤₥₦₧₨₩₪₫₭₮₯₰₱₲₳₵₶₷₸₹₺₻₼₾₿"
_HYPHENS = "---|--|——|-|–|—|~"
# English abbreviations kept whole with their final "." (the single-token entries of spaCy's table).
_ABBREV = (
    "Adm Ak Ala Apr Ariz Ark Aug Bros Calif Co Colo Conn Corp D.C Dec Del Dr E.G E.g Feb Fla Ga Gen Gov I.E I.e "
    "Ia Id Ill Inc Ind Jan Jr Jul Jun Kan Kans Ky La Ltd Mar Mass Md Messrs Mich Minn Miss Mo Mont Mr Mrs Ms Mt "
    "N.C N.D N.H N.J N.M N.Y Neb Nebr Nev Nov Oct Okla Ore Pa Ph.D Prof Rep Rev S.C Sen Sep Sept St Tenn Va Wash "
    "Wis a.m co e.g i.e p.m v.s vs"
).split()
_ABBREV_RE = "|".join(a.replace(".", r"\.") for a in _ABBREV)
_UNITS = "km|kg|cm|mm|mg|lb|oz|ft|yd|mph|kmh|hPa|MB|GB|KB|TB|kb|gb|tb|m|g|t|T|G|M|K"
_PRONOUNS = (
    "i|you|he|she|it|we|they|who|what|where|when|why|how|there|that|this|these|those|could|should|would|might|must"
)
# Contractions in spaCy's English exception table written without an apostrophe ("youre" -> "you", "re"):
# second part -> the words it follows. With an apostrophe, "'m 're 've 'll 'd" follow any of _PRONOUNS and
# "n't" the words listed for "nt".
_NO_APOSTROPHE = {
    "m": "i",
    "re": "how|there|these|they|those|what|when|where|why|you",
    "ve": "could|how|i|might|must|not|should|there|these|they|those|we|what|when|where|who|why|would|you",
    "ll": "how|it|that|there|these|they|this|those|what|when|where|who|why|you",
    "d": "he|how|i|it|that|there|these|they|this|those|we|what|when|where|who|why|you",
    "s": "he|how|she|that|there|this|what|when|where|who|why",
    "nt": "ai|are|ca|could|dare|did|do|does|had|has|have|is|may|might|must|need|ought|sha|should|was|were|wo|would",
    "not": "can",
    "na": "gon",
    "ta": "got",
    "all": "y",
}


def _cls(chars: str) -> str:
    """Escape the characters that are special inside a Rust regex character class."""
    return "".join("\\" + c if c in "\\[]^-&~" else c for c in chars)


_PRE = _cls("§%=—–+" + _PUNCT + _QUOTES + _CURRENCY) + r"\p{So}"  # chars stripped from a chunk's start
_SUF = _cls("—–" + _PUNCT + _QUOTES) + r"\p{So}"  # ... and from its end ("." is marked in pass 1)
_Q = _cls(_QUOTES)
_END = rf"((?:[{_SUF}][{_SUF}.]*)?(?:\s|$))"  # what may follow a suffix: only suffixes up to the chunk's end
_START = rf"(?:^|\s)[{_PRE}]*"  # what may precede an exception: the chunk's start and prefixes
_AFTER = rf"[{_SUF}.]*(?:\s|$)"  # ... and follow it: suffixes (a "." too) and the chunk's end
# spaCy's ALPHA_LOWER: lower-case letters and the uncased scripts it lists (a "." after them is split)
_LOWER = r"\p{Ll}\p{Arabic}\p{Hebrew}\p{Ethiopic}\p{Bengali}\p{Devanagari}\p{Sinhala}\p{Kannada}\p{Tamil}" + (
    r"\p{Telugu}\p{Hangul}\p{Hiragana}\p{Katakana}\p{Han}"
)

# Pass 1: (left)(infix)(right) per rule -> left SEP infix SEP right. Order matters where two rules
# could start at the same character (leftmost-first).
_SPLIT_RULES = [
    rf"((?:https?://|www\.)\S*[^\s.{_SUF}])()()",  # URLs stay whole (less their suffix marks)
    rf"({_START}(?:{_ABBREV_RE})\.|{_START}and/or)()()",  # abbreviations keep their "."
    rf"({_START}[a-zäöü]\.)(){_END}",  # so do single letters ("a." ... "z.") standing alone
    rf"([\p{{L}}\d])({_HYPHENS})(\p{{L}})",
    r"(\d)([+\-*^])(\d|-)",
    rf"([{_LOWER}{_Q.replace(',', '')}])(\.)([\p{{Lu}}{_Q.replace(',', '')}])",
    r"(\p{L})(,)(\p{L})",
    r"([\p{L}\d])([:<>=/])(\p{L})",
    r"()(\.\.+|…|\p{So})()",
    rf"({_START}(?i:{_NO_APOSTROPHE['nt']}))()(n['’]t{_AFTER})",
    rf"({_START}(?i:{_PRONOUNS}))()(['’](?:m|re|ve|ll|d){_AFTER})",
    rf"([\p{{L}}\d])()(['’][sS]{_AFTER})",
    *[rf"({_START}(?i:{words}))()({part}{_AFTER})" for part, words in _NO_APOSTROPHE.items()],
    rf"(\d)()((?:%|[{_cls(_CURRENCY)}]|{_UNITS}){_AFTER})",
    # a final "." after a digit, lower-case letter, %²-+, punctuation or quote, or after two capitals
    rf"([\d{_LOWER}%²\-+{_cls(_PUNCT)}{_Q}]|\p{{Lu}}\p{{Lu}})(\.){_END}",
]
_SPLIT = "|".join(_SPLIT_RULES)
_SPLIT_TO = SEP.join("".join(f"${{{3 * i + k}}}" for i in range(len(_SPLIT_RULES))) for k in (1, 2, 3))

# Pass 2: a token body starts with a char that is not a prefix ("+" only before a digit) and ends
# with one that is not a suffix; the rest are prefix/suffix marks, one at a time ("..." whole).
_TOKEN = "|".join(
    [
        r"\.\.+|……|…",
        r"['’](?:[sS]|m|re|ve|ll|d|em)(?-u:\b)",  # ASCII \b: a Unicode one keeps the regex off its DFA
        r"\):",  # merged by spaCy's special-case matcher (an emoticon), common after Python signatures
        rf"(?:[^\s{SEP}{_PRE}]|\+\d)(?:[^\s{SEP}]*[^\s{SEP}{_SUF}])?",
        rf"[^\s{SEP}]",
    ]
)


def dt_words(text: pl.Expr) -> pl.Expr:
    """List of datatrove (spaCy English) word tokens of each text."""
    # twice: a rule consumes its right neighbour, so a split right after another ("a-b-c", "didn't.")
    # is only found on the second pass; the rules leave already-split text as it is
    marked = text.str.replace_all(_SPLIT, _SPLIT_TO).str.replace_all(_SPLIT, _SPLIT_TO)
    return marked.str.extract_all(_TOKEN)


def dt_word_count(text: pl.Expr) -> pl.Expr:
    """Number of datatrove (spaCy English) word tokens of each text (no token list is built)."""
    marked = text.str.replace_all(_SPLIT, _SPLIT_TO).str.replace_all(_SPLIT, _SPLIT_TO)
    return marked.str.count_matches(_TOKEN)
