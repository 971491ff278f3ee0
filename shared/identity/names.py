"""Name keys that equate a Chinese name across scripts and orders: ``李雷``, ``Lei Li``, ``LI Lei``, ``LiLei``.

A name is reduced to one or more *name keys*: the two parts of a Chinese name (surname, given name) in
tone-less pinyin, as an unordered pair (``"lei|li"``). Hanzi are read with pypinyin, the surname with
its reading *as a surname* (单 Shan, 曾 Zeng, 解 Xie, 区 Ou, compound surnames such as 欧阳 Ouyang);
romanised names are split into syllables where they are written as one word (``LiLei``, ``XiaoMing``),
hyphens and apostrophes dropped, ü written ``ü``, ``v``, ``u`` or ``yu`` all accepted. A name in no
Chinese form (``John Smith``) is its words in any order.

A hanzi name also keeps its *form* (the characters themselves): ``李雷`` and ``李蕾`` are both
``lei|li``, and only the form tells the two people apart. The resolver compares keys for "the same
name in either script or order" and forms for "homophones, not the same characters" (see
``shared.identity.resolver``).

Everything here is stored only as tenant-salted HMACs (``NameHashes``); the clear keys never leave
the process.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import re
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

# Surnames whose reading as a surname differs from the character's most common reading (or that
# have two accepted ones). pypinyin reads a character by its commonest reading; a surname is not.
SURNAME_READINGS: dict[str, tuple[str, ...]] = {
    "单": ("shan",),
    "曾": ("zeng",),
    "解": ("xie",),
    "区": ("ou",),
    "仇": ("qiu",),
    "朴": ("piao",),
    "查": ("zha",),
    "盖": ("ge",),
    "缪": ("miao",),
    "乐": ("yue", "le"),
    "覃": ("qin",),
    "种": ("chong",),
    "翟": ("zhai",),
    "繁": ("po",),
    "折": ("she",),
    "员": ("yun",),
    "召": ("shao",),
    "黑": ("he",),
    "秘": ("bi",),
    "柏": ("bai",),
    "燕": ("yan",),
    "华": ("hua",),
    "纪": ("ji",),
    "葛": ("ge",),
    "尉": ("yu", "wei"),
    "那": ("na",),
    "能": ("nai",),
    "句": ("gou",),
    "隗": ("wei",),
    "冼": ("xian",),
    "洗": ("xian",),
    "角": ("jue",),
    "宓": ("fu",),
    "祭": ("zhai",),
    "谌": ("chen",),
    "薄": ("bo",),
    "卜": ("bu",),
    "都": ("du",),
    "万": ("wan",),
    "褚": ("chu",),
    "隽": ("juan",),
    "任": ("ren",),
    "曲": ("qu",),
    "石": ("shi",),
    "重": ("chong",),
    "朝": ("chao",),
    "莘": ("shen",),
    "藏": ("zang",),
    "行": ("xing",),
    "相": ("xiang",),
    "应": ("ying",),
    "盛": ("sheng",),
    "厍": ("she",),
    "粘": ("nian",),
    "车": ("che",),
    "贾": ("jia",),
    "陆": ("lu",),
    "沈": ("shen",),
    "长": ("chang",),
    "郇": ("huan",),
    "逄": ("pang",),
    "訾": ("zi",),
    "佴": ("nai",),
    "阚": ("kan",),
    "蕃": ("pi",),
}

COMPOUND_SURNAMES: dict[str, str] = {
    "欧阳": "ouyang",
    "司马": "sima",
    "上官": "shangguan",
    "诸葛": "zhuge",
    "东方": "dongfang",
    "皇甫": "huangfu",
    "尉迟": "yuchi",
    "公孙": "gongsun",
    "慕容": "murong",
    "长孙": "zhangsun",
    "宇文": "yuwen",
    "司徒": "situ",
    "司空": "sikong",
    "夏侯": "xiahou",
    "令狐": "linghu",
    "澹台": "tantai",
    "万俟": "moqi",
    "端木": "duanmu",
    "独孤": "dugu",
    "南宫": "nangong",
    "西门": "ximen",
    "轩辕": "xuanyuan",
    "呼延": "huyan",
    "申屠": "shentu",
    "钟离": "zhongli",
    "闻人": "wenren",
    "赫连": "helian",
    "百里": "baili",
    "东郭": "dongguo",
    "公羊": "gongyang",
    "濮阳": "puyang",
    "太史": "taishi",
    "仲孙": "zhongsun",
    "单于": "chanyu",
    "鲜于": "xianyu",
    "拓跋": "tuoba",
    "第五": "diwu",
}

# Common single-character surnames (the commonest few hundred cover nearly every buyer): their
# readings are what a romanised name written as one word (``LiLei``, ``LeiLi``) is split on.
COMMON_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖萧田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫阎段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
    "常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍"
    "涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党"
    "宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝区朴乐"
    "洪谈宣阚帅井诸练屠卿桑利"
)

HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
# Separators inside a hanzi name: spaces (full-width too) and the interpuncts of transliterated names.
HAN_SEPARATORS = re.compile(r"[\s\u00b7\u2022\u30fb\u2027\uff0e.]+")
WORD_SPLIT = re.compile(r"[\s,;/_.]+")
IN_WORD_JOINERS = re.compile(r"['’`\-\u2010-\u2015]")
MAX_NAME_CHARS = 64
MAX_SPLITS = 4


@dataclass(frozen=True)
class NameKeys:
    """The clear name keys of one name (never stored): unordered part pairs, and the hanzi form."""

    keys: frozenset[str]
    form: str | None = None


@dataclass(frozen=True)
class NameHashes:
    """A name as the index stores it: salted HMACs of its keys; of each key with its hanzi form; and of
    each key that a hanzi form was seen under (so a homophone in other characters can be told apart)."""

    keys: frozenset[str] = frozenset()
    forms: frozenset[str] = frozenset()
    written: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.keys)

    def __or__(self, other: NameHashes) -> NameHashes:
        return NameHashes(self.keys | other.keys, self.forms | other.forms, self.written | other.written)


def _hmac(salt: bytes, text: str) -> str:
    return hmac.new(salt, text.encode(), hashlib.sha256).hexdigest()


def name_hashes(raw: str | None, salt: bytes) -> NameHashes:
    parsed = name_keys(raw)
    if parsed is None:
        return NameHashes()
    keys = frozenset(_hmac(salt, f"name:{k}") for k in parsed.keys)
    if parsed.form is None:
        return NameHashes(keys)
    return NameHashes(
        keys,
        frozenset(_hmac(salt, f"name-form:{k}={parsed.form}") for k in parsed.keys),
        frozenset(_hmac(salt, f"name-written:{k}") for k in parsed.keys),
    )


@lru_cache(maxsize=4096)
def name_keys(raw: str | None) -> NameKeys | None:
    """The name keys of a name as any channel writes it; None for no name at all."""
    if not raw:
        return None
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text:
        return None
    if len(text) > MAX_NAME_CHARS:
        # No person's name: a company, an address pasted into the field. One key of the whole text (a
        # prefix would make two such names one), never read as pinyin.
        return NameKeys(frozenset({"whole:" + " ".join(text.casefold().split())}))
    han = "".join(HAN.findall(text))
    if han:
        keys = _u_variants(
            _hanzi_keys(HAN_SEPARATORS.sub(" ", "".join(c if HAN.match(c) else " " for c in text)).split())
        )
        latin = _latin_keys(HAN.sub(" ", text))
        if latin & keys:  # "李雷 Lei Li": both halves name one person; "李雷 Wang Wei" names two
            keys |= latin
        return NameKeys(frozenset(k for k in keys if k), han) if any(keys) else None
    keys = {k for k in _latin_keys(text) if k}
    return NameKeys(frozenset(keys)) if keys else None


def _hanzi_keys(words: list[str]) -> set[str]:
    """``李雷`` / ``李 雷`` / ``李 小 龙`` -> the surname's reading and the given name's; a transliterated
    name in parts (``阿依古丽·买买提``) -> its first part and the rest."""
    if not words:
        return set()
    if len(words) == 1:
        surname, given = _split_surname(words[0])
        if not given:
            return {_pair("".join(_readings_of(words[0])))}
        return {_pair(s, g) for s in _surname_readings(surname) for g in _given_readings(given)}
    rest = "".join(words[1:])
    if words[0] in COMPOUND_SURNAMES or len(words[0]) == 1:
        return {_pair(s, g) for s in _surname_readings(words[0]) for g in _given_readings(rest)}
    return {_pair("".join(_readings_of(words[0])), "".join(_readings_of(rest)))}


def _split_surname(word: str) -> tuple[str, str]:
    if word[:2] in COMPOUND_SURNAMES and len(word) > 2:
        return word[:2], word[2:]
    return word[:1], word[1:]


def _surname_readings(surname: str) -> tuple[str, ...]:
    if surname in COMPOUND_SURNAMES:
        return (COMPOUND_SURNAMES[surname],)
    if surname in SURNAME_READINGS:
        return SURNAME_READINGS[surname]
    return ("".join(_readings_of(surname)),)


def _given_readings(given: str) -> tuple[str, ...]:
    return ("".join(_readings_of(given)),)


def _u_variants(keys: set[str]) -> set[str]:
    """ü: pypinyin writes lv/nv; passports and shops write Lü, Lv, Lyu or plain Lu: both are kept."""
    return keys | {k.replace("v", "u") for k in keys if "v" in k}


def _readings_of(text: str) -> list[str]:
    """Each character's commonest reading, tone-less (ü as v); characters with no reading are dropped."""
    readings = _character_readings()
    found = (readings.get(ord(c), "") for c in text)
    return [_toneless(r.split(",", 1)[0]) for r in found if r]


def _toneless(reading: str) -> str:
    reading = unicodedata.normalize("NFKD", reading).replace("u\u0308", "v")  # ü with or without a tone mark
    return "".join(c for c in reading if not unicodedata.combining(c)).lower()


@cache
def _character_readings() -> dict[int, str]:
    """pypinyin's character dictionary (code point -> readings, commonest first), read from its data file.

    Only the characters' readings are needed (a surname's reading comes from ``SURNAME_READINGS``):
    importing the pypinyin package would also load its phrase dictionary, 0.46 s and 61 MB more on the
    first hanzi name a Lambda container sees, for nothing a name uses.
    """
    spec = importlib.util.find_spec("pypinyin")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("pypinyin is not installed (a runtime dependency: see pyproject.toml)")
    path = Path(next(iter(spec.submodule_search_locations))) / "pinyin_dict.json"
    return {int(code): readings for code, readings in json.loads(path.read_text(encoding="utf-8")).items()}


def _pair(first: str, second: str = "") -> str:
    return "|".join(sorted(p for p in (first, second) if p))


def _latin_keys(text: str) -> set[str]:
    """``Lei Li``, ``LI Lei``, ``LiLei``, ``Xiao-Ming Zhang``, ``Zhang Xiao Ming`` -> the same pairs as
    their hanzi; ``John Smith`` -> its words in any order."""
    text = _toneless(text.casefold())  # accents and tone marks off, ü as v
    text = IN_WORD_JOINERS.sub("", text)  # hyphens, apostrophes
    words = [_without_tone_numbers(re.sub(r"[^\w]|_", "", w)) for w in WORD_SPLIT.split(text)]
    # Lyu / Nyu spell ü only as a syllable of their own, at the start of a word (吕 Lyu); inside one,
    # `wenyu` is wen + yu.
    words = [re.sub(r"^([ln])yu", r"\1v", w) for w in words if w]
    if not words:
        return set()
    if not all(_syllables(w) for w in words):
        return {"|".join(sorted(words))}  # not a romanised Chinese name: its words, any order
    keys: set[str] = set()
    if len(words) == 1:
        keys = {_pair(s, g) for s, g in _surname_splits(words[0])} or {words[0]}
        keys.add(words[0])
    elif len(words) == 2:
        keys = {_pair(*words)}
    else:  # Zhang Xiao Ming / Xiao Ming Zhang: the surname is the first word or the last
        keys = {_pair(words[0], "".join(words[1:])), _pair(words[-1], "".join(words[:-1]))}
    return _u_variants(keys)


def _without_tone_numbers(word: str) -> str:
    """``li3`` -> ``li``, ``xiao3ming2`` -> ``xiaoming``; other digits stay (``Buyer 2`` is not ``Buyer 1``)."""
    bare = re.sub(r"(?<=[a-z])[1-5]", "", word)
    return bare if bare != word and bare.isalpha() and _syllables(bare) else word


def _surname_splits(word: str) -> list[tuple[str, str]]:
    """The ways a one-word romanised name splits into a known surname and a given name: ``lilei`` ->
    ("li", "lei"); ``leili`` -> ("li", "lei") read given-name first too."""
    found: list[tuple[str, str]] = []
    surnames = _surname_pinyin()
    for cut in range(1, len(word)):
        head, tail = word[:cut], word[cut:]
        if not (_syllables(head) and _syllables(tail)):
            continue
        if head in surnames:
            found.append((head, tail))
        if tail in surnames:
            found.append((tail, head))
        if len(found) >= MAX_SPLITS:
            break
    return found


@cache
def _surname_pinyin() -> frozenset[str]:
    readings = {r for s in COMMON_SURNAMES for r in _surname_readings(s)}
    readings |= {r for s in SURNAME_READINGS for r in SURNAME_READINGS[s]}
    readings |= set(COMPOUND_SURNAMES.values())
    return frozenset(readings | {r.replace("v", "u") for r in readings})


@lru_cache(maxsize=8192)
def _syllables(word: str) -> bool:
    """Whether a word is a run of pinyin syllables (``xiaoming``, ``lilei``)."""
    if not word:
        return True
    return any(word.startswith(s) and _syllables(word[len(s) :]) for s in _syllable_prefixes(word[:6]))


def _syllable_prefixes(head: str) -> list[str]:
    syllables = _pinyin_syllables()
    return [head[:n] for n in range(min(6, len(head)), 0, -1) if head[:n] in syllables]


@cache
def _pinyin_syllables() -> frozenset[str]:
    """Every tone-less Mandarin syllable (ü as v, and as u after l/n), from pypinyin's own readings."""
    found = {_toneless(r) for readings in _character_readings().values() for r in readings.split(",")}
    found = {s for s in found if (s.isascii() and s.isalpha() and len(s) > 1) or s in {"a", "e", "o"}}
    found -= {"hm", "hng", "ng", "m", "n", "r", "ei", "yo", "lo"}
    return frozenset(found | {s.replace("v", "u") for s in found})
