#!/usr/bin/env python3
"""Generate the CLIP tokenizer resource and the parity fixtures for ``PivotTextTests``.

Writes

* ``Sources/PivotText/Resources/clip-merges.txt`` -- the 48,894 merge lines CLIP uses (lines
  1..48894 of open_clip's ``bpe_simple_vocab_16e6.txt.gz``, MIT licence, OpenAI), uncompressed.
  pivot derives the vocabulary from it the way CLIP does: the 256 byte characters, the same
  with ``</w>``, every merge joined, then ``<|startoftext|>`` and ``<|endoftext|>`` (49,408 ids).
* ``Tests/PivotTextTests/Fixtures/``:
  - ``prompts.json``: the prompt list (hand-written cases and seeded random ones);
  - ``expected.json``: ``cases``, per case transformers' ``CLIPTokenizer`` ids (unpadded; the
    rest of the 77 are the case's pad id), the truncation flag and the dropped text, computed the way
    diffusers does (``batch_decode`` of the untruncated ids ``[76:-1]``);
  - ``configs/sd1``, ``configs/sd2``: tokenizer_config.json / special_tokens_map.json of the SD 1.x
    (pads with ``<|endoftext|>``) and SD 2.x (pads with ``!``) hub folders;
  - ``tiny-tokenizer/``: a ~1000-id vocabulary (the byte characters minus those of the UTF-8
    lead bytes F0..F4, so 4-byte characters meet the unknown token, plus CLIP's first merges),
    classic layout (vocab.json, merges.txt, special_tokens_map.json, tokenizer_config.json);
  - ``tiny-tokenizer-v5/``: the same tokenizer as transformers 5 saves it (tokenizer.json,
    tokenizer_config.json);
  - ``variants/<name>/``: config files only (the test adds the tiny vocab.json/merges.txt, or
    uses the folder as is when it has a tokenizer.json) exercising how transformers resolves
    special tokens and their ``normalized``/``lstrip``/``rstrip``/``single_word`` flags;
  - ``unicode.json``: per code point, the class the CLIP pre-tokenizer regex sees (``\\s``,
    ``\\p{L}``, ``\\p{N}``, other) and, where it changes, the normalizer's output; a few sequences.

Cases in expected.json: ``sd1`` (real vocab, EOS padding), ``sd2`` (real vocab, ``!`` padding),
``tiny`` (tiny vocab, both layouts), each on every prompt; ``variant:<name>`` on the prompts that
involve special strings (``variantPrompts``); ``added`` (real vocab plus tokens added with
``add_tokens``, on its own ``prompts``).

Needs transformers 5.23 (tokenizers 0.23) and the merges file: either ``pip install --no-deps
open_clip_torch`` (the file ships inside the package, which is never imported; without
``--no-deps`` pip replaces the pinned CPU torch) or ``--merges PATH``. Run from the package
root (deterministic; takes about a minute):

    python3 scripts/make_tokenizer_fixtures.py [--merges bpe_simple_vocab_16e6.txt.gz]
"""

import argparse
import gzip
import importlib.util
import json
import os
import random
import shutil
import sys
import tempfile
import unicodedata
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import transformers  # noqa: E402
from tokenizers import Regex, normalizers, pre_tokenizers  # noqa: E402
from transformers import CLIPTokenizer  # noqa: E402

transformers.logging.set_verbosity_error()

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "Tests/PivotTextTests/Fixtures")
RESOURCE = os.path.join(ROOT, "Sources/PivotText/Resources/clip-merges.txt")
MAX_LEN = 77
SOT, EOT = "<|startoftext|>", "<|endoftext|>"


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def find_merges(path):
    if path:
        return path
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("need open_clip's bpe_simple_vocab_16e6.txt.gz: pip install open_clip_torch, or pass --merges")
    return os.path.join(list(spec.submodule_search_locations)[0], "bpe_simple_vocab_16e6.txt.gz")


def clip_vocab(merges, drop_bytes=()):
    byte_chars = [c for b, c in bytes_to_unicode().items() if b not in drop_bytes]
    vocab = byte_chars + [c + "</w>" for c in byte_chars]
    vocab += ["".join(m.split(" ")) for m in merges]
    vocab += [SOT, EOT]
    return {t: i for i, t in enumerate(vocab)}


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def write_json(path, obj, indent=2):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        if indent:
            json.dump(obj, f, ensure_ascii=False, indent=indent)
            f.write("\n")
        else:
            f.write(dumps(obj) + "\n")


def write_vocab(folder, vocab, merges):
    os.makedirs(folder, exist_ok=True)
    write_json(os.path.join(folder, "vocab.json"), vocab, indent=None)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")


def added(content, normalized=True, typed=True, **flags):
    d = {"__type": "AddedToken"} if typed else {}
    d.update(content=content, lstrip=False, normalized=normalized, rstrip=False, single_word=False)
    d.update(flags)
    return d


# The hub's SD 1.x (runwayml) and SD 2.x (stabilityai) tokenizer folders: SD 2.x's
# tokenizer_config.json still names <|endoftext|> as pad, special_tokens_map.json says "!".
def hub_configs(pad_in_map):
    config = {"add_prefix_space": False, "bos_token": added(SOT), "do_lower_case": True,
              "eos_token": added(EOT), "errors": "replace", "model_max_length": MAX_LEN,
              "pad_token": EOT, "special_tokens_map_file": "./special_tokens_map.json",
              "tokenizer_class": "CLIPTokenizer", "unk_token": added(EOT)}
    special = {"bos_token": added(SOT, typed=False), "eos_token": added(EOT, typed=False),
               "pad_token": pad_in_map, "unk_token": added(EOT, typed=False)}
    return {"tokenizer_config.json": config, "special_tokens_map.json": special}


def variant_configs():
    decoder = lambda d: {str(k): dict(v, special=v.get("special", True)) for k, v in d.items()}
    tiny_sot, tiny_eot = 998, 999
    return {
        # SD 2.x as on the hub: pad "!" from special_tokens_map.json overrides the config.
        "sd2-style": hub_configs("!"),
        # transformers 4.3x-era config with added_tokens_decoder: special_tokens_map.json is ignored.
        "decoder": {"tokenizer_config.json": {
            "added_tokens_decoder": decoder({
                0: added("!", normalized=False, typed=False),
                tiny_sot: added(SOT, normalized=True, typed=False),
                tiny_eot: added(EOT, normalized=False, typed=False)}),
            "bos_token": SOT, "eos_token": EOT, "pad_token": "!", "unk_token": EOT,
            "model_max_length": MAX_LEN, "tokenizer_class": "CLIPTokenizer"},
            "special_tokens_map.json": {"pad_token": EOT}},
        "decoder-normalized": {"tokenizer_config.json": {
            "added_tokens_decoder": decoder({
                0: added("!", normalized=True, typed=False),
                tiny_sot: added(SOT, normalized=False, typed=False),
                tiny_eot: added(EOT, normalized=True, typed=False)}),
            "bos_token": SOT, "eos_token": EOT, "pad_token": "!", "unk_token": EOT,
            "model_max_length": MAX_LEN}},
        # Only a tokenizer_config.json whose AddedToken objects carry no "special": normalized.
        "config-only": {"tokenizer_config.json": {
            "bos_token": added(SOT), "eos_token": added(EOT), "unk_token": EOT,
            "pad_token": {"__type": "AddedToken", "content": "!"}, "model_max_length": MAX_LEN}},
        # No config files at all: CLIPTokenizer's defaults.
        "defaults": {},
        # Extra added tokens with lstrip/rstrip/single_word, and a legacy added_tokens.json.
        "flags": {"tokenizer_config.json": {
            "added_tokens_decoder": decoder({
                tiny_sot: added(SOT, normalized=False, typed=False),
                tiny_eot: added(EOT, normalized=False, typed=False),
                1000: added("<Star>", normalized=True, typed=False, lstrip=True, rstrip=True, special=False),
                1001: added("[w]", normalized=False, typed=False, single_word=True),
                1002: added("ab", normalized=False, typed=False, lstrip=True)}),
            "bos_token": SOT, "eos_token": EOT, "pad_token": EOT, "unk_token": EOT,
            "additional_special_tokens": ["[w]"], "model_max_length": MAX_LEN}},
        # Named AddedToken objects: an indexed content keeps the index's flags, the others are added
        # with their own; extra special tokens given as objects.
        "named-objects": {"tokenizer_config.json": {
            "added_tokens_decoder": decoder({tiny_eot: added(EOT, normalized=False, typed=False)}),
            "bos_token": added(SOT, normalized=False), "eos_token": added(EOT, normalized=True),
            "unk_token": added(EOT, normalized=True), "pad_token": "!",
            "additional_special_tokens": [added("<Star>", rstrip=True), {"__type": "AddedToken", "content": "[w]"}],
            "model_max_length": MAX_LEN}},
        "added-tokens-json": {"tokenizer_config.json": hub_configs(EOT)["tokenizer_config.json"],
                              "special_tokens_map.json": hub_configs(EOT)["special_tokens_map.json"],
                              "added_tokens.json": {"<cat-toy>": 1000, "<|endoftext|>": tiny_eot}},
    }


HAND = [
    "", " ", "   ", "\t", "\n", "a", "A", "!", "?", "'", "''", "'s", "1", "12345",
    "a photo of a cat", "a photograph of an astronaut riding a horse",
    "A photo of a cat sitting on a bench, highly detailed, 8k, trending on artstation",
    "portrait of a woman, oil painting, by Rembrandt, dramatic lighting",
    "a cat wearing a hat", "a dog wearing a hat", "a cat wearing sunglasses",
    "masterpiece, best quality, (((ultra detailed))), [bad hands], {blue eyes}",
    "a red car parked next to a blue house; snow, winter, 35mm photo",
    "it's a dog's life", "don't STOP believin'", "I'M HERE, you're there, we've been, they'll go, he'd say",
    "rock'n'roll", "'quoted' and \"double quoted\"", "it’s curly", "the cat's' toy''s",
    "''s '''t 'RE 'Ve 'M 'LL 'D", "'sun 'tree 'realm", "o'clock o'Neil L'Oréal",
    "wow!!!", "!!!", "! ! !", "!?!?", "hello!world", "¡hola!", "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
    "what?!", "stop.", "end...", "a,b,c", "a - b – c — d", "50% off", "$100 & €200 £3 ¥4",
    "#hashtag @user http://example.com/a?b=c&d=e", "email@example.com", "C:\\path\\to\\file.txt",
    "(a) [b] {c} <d>", "x*y+z=1/2^3", "~`|\\", "__init__", "snake_case_name", "kebab-case-name",
    "1024x768", "3.14159", "2023-01-01", "v1.5", "SD2.1", "100000000", "0.5 0.25", "1st 2nd 3rd 4th",
    "١٢٣ ۴۵۶ १२३", "½ ¼ ¾ ² ³ ¹", "Ⅻ ⅻ Ⅳ", "①②③", "𝟙𝟚𝟛", "Ⅿ and ↂ",
    "café", "cafe\u0301", "naïve façade résumé", "Ñandú", "Ångström Å", "Straße STRASSE ß ẞ",
    "ΣΑΣ σας Σ ΟΔΟΣ", "İstanbul ıi Iı", "ǅ ǈ ǋ", "ﬁ ﬂ ﬀ", "ＡＢＣ ａｂｃ １２３", "Ⅰ ⅰ",
    "東京タワー", "一只猫坐在长椅上", "日本語のテキスト、句読点。", "한국어 텍스트", "हिन्दी पाठ",
    "النص العربي", "עברית", "ภาษาไทย", "Русский текст, ПРИВЕТ", "Ελληνικά", "ქართული", "Հայերեն",
    "𠀀𠀁 𪚥", "😀", "a 😀 b", "😀😃😄", "👍🏽", "👨‍👩‍👧‍👦", "🇺🇸🇯🇵", "1️⃣", "❤️", "☃", "★☆",
    "cat😀dog", "emoji at end 🎉", "🎉 emoji at start",
    "two  spaces", "tab\there", "new\nline", "crlf\r\nline", "  leading", "trailing  ", "\t\n mixed \r\n ",
    "nbsp\u00a0here", "ideographic\u3000space", "em\u2003space", "zero\u200bwidth", "bom\ufeffhere",
    "line\u2028sep", "nel\u0085here", "vt\x0bff\x0c", "ctrl\x00\x01\x1f\x7f", "soft\u00adhyphen",
    "combining \u0301 alone", "a\u0300\u0301\u0302", "zwj\u200dzwnj\u200c", "rtl\u200fmark",
    "new in unicode 17: \u088f \ua7ce", "private use \ue000 \U000f0000", "noncharacter \ufdd0",
    "<|endoftext|>", "<|startoftext|>", "<|endoftext|><|endoftext|>", "a<|endoftext|>b",
    "hello <|endoftext|> world", "<|ENDOFTEXT|>", "<|EndOfText|> <|STARTOFTEXT|>", "<|endoftext",
    "endoftext|>", "<|endoftext |>", "< |endoftext|>", "<|startoftext|>a photo<|endoftext|>",
    "<<|endoftext|>>", "<|endoftext|>!!!<|startoftext|>", "!<|endoftext|>!", "<|startoftext|><|startoftext|>",
    "  <|endoftext|>  ", "<|endoftext|>\u0301", "x<|startoftext|>y<|endoftext|>z",
    "a\u1df8\u034d (a Unicode 10 mark: tokenizers' NFC, Unicode 9 data, leaves it unordered)",
    "\u0311\u0f81 \u0315\u0f73 x\u0344\u0315", "\uac00\u11a8 y\uac00\u11a8 \u1100\u1161\u11a8", "\U000110a5\U000110ba",
    "<cat-toy>", "a <cat-toy> on a table", "A <Cat-Toy>", "<cat-toy><cat-toy>", "<dog>", "[w] w[w] [w]x [W]",
    "<star> <Star> a<star>b  <STAR>  ", "ab cab abc  ab ", "star!<Star>!",
]

WORDS = ("a photo of the cat dog bird horse astronaut castle forest city night sunset painting portrait "
         "highly detailed sharp focus cinematic lighting octane render trending artstation beautiful "
         "landscape mountains river ocean waves clouds dramatic epic fantasy concept art illustration "
         "anime style watercolor sketch digital 4k 8k hdr bokeh depth field red green blue golden hour "
         "wearing hat sunglasses sitting on bench table car road street building old new small large").split()
POOLS = {
    "ascii": [chr(c) for c in range(32, 127)],
    "space": [" ", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2009"],
    "latin": list("àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿĀāĂăŒœŠšŸŽžßÀÉÎÕÜ") + ["e\u0301", "o\u0308", "A\u030a"],
    "cjk": list("猫犬鳥東京日本語中文字山川海空花月星人の が を に は 한국어テキスト"),
    "emoji": ["😀", "😃", "🎉", "👍", "👍🏽", "❤️", "🇺🇸", "👨‍👩‍👧", "☃", "★", "🐱", "🌸", "1️⃣"],
    "punct": list("!?.,;:'\"()[]{}<>-_/\\|@#$%^&*+=~`") + ["!!!", "...", "'s", "'t", "'re", "’", "“", "”", "—", "…"],
    "digits": list("0123456789") + ["١", "२", "½", "²", "Ⅻ", "①"],
    "special": [SOT, EOT, "<|ENDOFTEXT|>", "<|endoftext", "!", "!!"],
}


def random_prompts(rng):
    out = []
    for _ in range(120):  # short mixed prompts
        pools = rng.sample(sorted(POOLS), k=rng.randint(1, 4))
        parts = []
        for _ in range(rng.randint(1, 12)):
            pool = rng.choice(pools + ["words"])
            parts.append(rng.choice(WORDS) if pool == "words" else rng.choice(POOLS[pool]))
        sep = rng.choice(["", " ", " ", " ", "  "])
        out.append(sep.join(parts))
    for _ in range(40):  # ordinary SD prompts, mixed case and commas
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 30))]
        words = [w.capitalize() if rng.random() < 0.2 else w.upper() if rng.random() < 0.05 else w for w in words]
        out.append(rng.choice([" ", ", ", " "]).join(words))
    for i in range(60):  # long prompts: >75 tokens, with different content around the cut
        words = [rng.choice(WORDS) for _ in range(rng.randint(50, 90))]
        k = rng.randint(40, len(words) - 1)
        pool = ["cjk", "emoji", "latin", "punct", "special", "digits", "space"][i % 7]
        for j in range(k, min(len(words), k + rng.randint(1, 20))):
            words[j] = rng.choice(POOLS[pool]) + (rng.choice(POOLS[pool]) if rng.random() < 0.5 else "")
        out.append(" ".join(words))
    out.append("a cat " * 40)
    out.append("東京" * 60)
    out.append("😀" * 30)
    out.append("!" * 100)
    out.append("word " * 75 + "last")
    out.append("word " * 74 + "last")
    out.append("word " * 76)
    return out


def load(folder):
    return CLIPTokenizer.from_pretrained(folder)


def encode_case(tok, prompts):
    ids, truncated, dropped = [], [], []
    for p in prompts:
        enc = tok(p, padding="max_length", max_length=MAX_LEN, truncation=True)
        n = sum(enc.attention_mask)
        assert enc.input_ids[n:] == [tok.pad_token_id] * (MAX_LEN - n), repr(p)
        ids.append(enc.input_ids[:n])
        full = tok(p, padding="longest").input_ids
        assert full[: MAX_LEN - 1] == enc.input_ids[: MAX_LEN - 1] or len(full) <= MAX_LEN, repr(p)
        truncated.append(len(full) > MAX_LEN)
        dropped.append(tok.batch_decode([full[MAX_LEN - 1 : -1]])[0] if len(full) > MAX_LEN else "")
    return {"pad": tok.pad_token_id, "bos": tok.bos_token_id, "eos": tok.eos_token_id,
            "vocabularySize": len(tok), "ids": ids, "truncated": truncated, "dropped": dropped}


def write_configs(folder, files):
    os.makedirs(folder, exist_ok=True)
    for name, content in files.items():
        write_json(os.path.join(folder, name), content)


def unicode_tables():
    split = pre_tokenizers.Split(Regex(
        r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
        behavior="removed", invert=True)
    normalizer = CLIPTokenizer(vocab={SOT: 0, EOT: 1}, merges=[]).backend_tokenizer.normalizer
    pieces = lambda s: [x[0] for x in split.pre_tokenize_str(s)]
    ranges, normalized = [], {}
    for cp in range(0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        c = chr(cp)
        k = "S" if pieces(c) == [] else "L" if pieces("a" + c) == ["a" + c] else "N" if pieces(c + c) == [c, c] else "O"
        if ranges and ranges[-1][2] == k and ranges[-1][1] in (cp - 1, 0xD7FF):
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp, k])
        if normalizer.normalize_str(c) != c:
            normalized[str(cp)] = normalizer.normalize_str(c)
    # Mark sequences, decomposable characters, Hangul jamo: canonical reordering and composition.
    marks = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000 and unicodedata.combining(chr(c))]
    composed = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000
                and unicodedata.decomposition(chr(c))[:1] not in ("", "<")]
    bases = list("aeouAEOUnNcCyY") + [chr(c) for c in list(range(0x1100, 0x1113)) + list(range(0x1161, 0x1176))
                                      + list(range(0x11A8, 0x11C3))] + list(
        "\uac00\uac01\u0915\u093c\u0b47\u0b3e\u0b57\U000110a5\U000110ba\U00011347\U0001133e\u0f40"
        "\u0f73\u0f75\u0f81\u0344\u0340\u0341\u0343\u03b1\u0391\u1f00\u0418\u0306\u1df8\u034d")
    rng = random.Random(99)
    sequences = ["e\u0301", "\u212b", "ΣΑΣ", "İI", "a \t\n\u3000\u00a0 b", "  ", "ǅ", "ẞ"]
    sequences += ["".join(rng.choice(rng.choice([marks, marks, composed, bases, bases])) for _ in range(rng.randint(1, 8)))
                  for _ in range(1500)]
    return {"classes": ranges, "normalized": normalized,
            "sequences": [[x, normalizer.normalize_str(x)] for x in sequences]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--merges", help="path of bpe_simple_vocab_16e6.txt.gz (default: open_clip's copy)")
    args = ap.parse_args()
    assert transformers.__version__ == "5.23.0", transformers.__version__

    lines = gzip.open(find_merges(args.merges)).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    assert len(merges) == 48894 and all(len(m.split(" ")) == 2 for m in merges)
    os.makedirs(os.path.dirname(RESOURCE), exist_ok=True)
    with open(RESOURCE, "w", encoding="utf-8") as f:
        f.write("\n".join(merges) + "\n")
    vocab = clip_vocab(merges)
    assert len(vocab) == 49408 and vocab[EOT] == 49407

    if os.path.isdir(FIXTURES):
        shutil.rmtree(FIXTURES)
    prompts = HAND + random_prompts(random.Random(1234))
    assert len(prompts) >= 300
    write_json(os.path.join(FIXTURES, "prompts.json"), prompts)
    expected = {}  # case name → expected results
    with tempfile.TemporaryDirectory() as tmp:
        for name, pad in [("sd1", EOT), ("sd2", "!")]:
            files = hub_configs(pad)
            write_configs(os.path.join(FIXTURES, "configs", name), files)
            folder = os.path.join(tmp, name)
            write_vocab(folder, vocab, merges)
            write_configs(folder, files)
            expected[name] = encode_case(load(folder), prompts)
            print(name, "pad", expected[name]["pad"], "truncated", sum(expected[name]["truncated"]))

        # Tiny vocabulary: byte characters without the 4-byte lead bytes, the first merges, specials.
        drop = range(0xF0, 0xF5)
        byte_chars = {c for b, c in bytes_to_unicode().items() if b not in drop}
        byte_chars |= {c + "</w>" for c in byte_chars}
        tiny_merges, known = [], set(byte_chars)
        for m in merges:
            a, b = m.split(" ")
            if a in known and b in known:
                tiny_merges.append(m)
                known.add(a + b)
            if len(known) + 2 == 1000:
                break
        tiny_vocab = clip_vocab(tiny_merges, drop_bytes=drop)
        assert len(tiny_vocab) == 1000, len(tiny_vocab)
        classic = os.path.join(FIXTURES, "tiny-tokenizer")
        write_vocab(classic, tiny_vocab, tiny_merges)
        write_configs(classic, hub_configs(EOT))
        tiny = load(classic)
        expected["tiny"] = encode_case(tiny, prompts)
        v5 = os.path.join(FIXTURES, "tiny-tokenizer-v5")
        tiny.save_pretrained(v5)
        assert sorted(os.listdir(v5)) == ["tokenizer.json", "tokenizer_config.json"], os.listdir(v5)
        assert encode_case(load(v5), prompts) == expected["tiny"]

        special = [p for p in prompts if any(s in p.lower() for s in ("<", "!", "[", "ab", "star"))]
        variant_prompts = special
        for name, files in variant_configs().items():
            write_configs(os.path.join(FIXTURES, "variants", name), files)
            folder = os.path.join(tmp, "variant-" + name)
            shutil.copytree(os.path.join(FIXTURES, "variants", name), folder)
            write_vocab(folder, tiny_vocab, tiny_merges)
            expected["variant:" + name] = encode_case(load(folder), special)
        # The SD 2.x-style variant as transformers 5 saves it.
        folder = os.path.join(FIXTURES, "variants", "sd2-style-v5")
        load(os.path.join(tmp, "variant-sd2-style")).save_pretrained(folder)
        expected["variant:sd2-style-v5"] = encode_case(load(folder), special)
        assert expected["variant:sd2-style-v5"] == expected["variant:sd2-style"]

        # Tokens added after loading (textual inversion), real vocab.
        tok = load(os.path.join(tmp, "sd1"))
        new = ["<cat-toy>", "<Dog>", "x y"]
        ids = [tok.add_tokens(t) and tok.convert_tokens_to_ids(t) for t in new]
        added_prompts = [p for p in prompts if "<" in p or "dog" in p.lower()] + ["x y", "x  y", "X Y", "<dog> <DOG>"]
        expected["added"] = dict(encode_case(tok, added_prompts), tokens=new, tokenIds=ids, prompts=added_prompts)

    write_json(os.path.join(FIXTURES, "expected.json"), {"variantPrompts": variant_prompts, "cases": expected}, indent=None)
    write_json(os.path.join(FIXTURES, "unicode.json"), unicode_tables(), indent=None)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(FIXTURES) for f in fs)
    print(f"{len(prompts)} prompts; fixtures {total / 1e6:.2f} MB; resource {os.path.getsize(RESOURCE) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
