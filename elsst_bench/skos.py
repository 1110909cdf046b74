"""SKOS/RDF parsing into a :class:`~elsst_bench.thesaurus.Thesaurus`.

Any SKOS file works: RDF/XML, Turtle or N-Triples, gzipped or not, from a path or (when online) a URL.
Parsing uses ``pyoxigraph``'s streaming parser (Rust): on ELSST R5 it reads the 236,925 triples in about
0.6 s, where a plain ``rdflib.Graph().parse`` takes about 9 s (``benchmarks/prepare.py`` measures both).
We read the triples once and keep only the SKOS/OWL predicates a thesaurus needs; an ``rdflib`` graph
would add a second in-memory copy for nothing.

Concept ids are version-independent: the UUID in the concept URI when there is one
(``https://elsst.cessda.eu/id/5/<uuid>`` -> ``<uuid>``), otherwise the URI's local name, otherwise the URI.

Input that is refused or repaired here, once for every format:

- an RDF/XML document that ends before its root element is closed is *truncated* (a streaming parser would
  otherwise hand back whatever came before the cut as if it were the whole file);
- control characters in labels and notes (C0 except tab/line feed/carriage return, DEL, C1; an ANSI escape
  sequence as a whole) are removed, so they never reach a dataset or a terminal; a label or note that is
  empty after whitespace normalisation is dropped. Both are counted in :class:`ParseStats`;
- :data:`PUBLISHED_RELEASES` is the one record of the ELSST releases this tool knows by their bytes: a
  source that claims such a release but is not its published file is flagged by :func:`source_warnings`
  (and gets its own dataset id, :func:`elsst_bench.tasks.dataset_id_for`).
"""

from __future__ import annotations

import gzip
import io
import hashlib
import re
import urllib.error
import urllib.request
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pyoxigraph as ox

from .errors import DataError
from .thesaurus import Concept, Thesaurus

SKOS = "http://www.w3.org/2004/02/skos/core#"
OWL = "http://www.w3.org/2002/07/owl#"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"

_FORMATS = {
    "rdfxml": ox.RdfFormat.RDF_XML,
    "rdf": ox.RdfFormat.RDF_XML,
    "xml": ox.RdfFormat.RDF_XML,
    "owl": ox.RdfFormat.RDF_XML,
    "ttl": ox.RdfFormat.TURTLE,
    "turtle": ox.RdfFormat.TURTLE,
    "nt": ox.RdfFormat.N_TRIPLES,
    "ntriples": ox.RdfFormat.N_TRIPLES,
}
_FORMAT_NAMES = {ox.RdfFormat.RDF_XML: "rdfxml", ox.RdfFormat.TURTLE: "turtle", ox.RdfFormat.N_TRIPLES: "ntriples"}
#: ELSST releases known by their published file (data/README.md): version -> sha256 of the file as
#: distributed and its number of live concepts. Only these bytes are "ELSST release <version>".
PUBLISHED_RELEASES = {
    "5": {"sha256": "71b102c27e218c051e8a34d97d5da88ea3cedd1eec120f5fba162babea250770", "live_concepts": 3_401},
}
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


@dataclass(frozen=True)
class Source:
    """The raw bytes of a SKOS file, where they came from, and their sha256 (of the bytes as given)."""

    name: str
    data: bytes  # decompressed RDF
    sha256: str
    format: "ox.RdfFormat"

    @property
    def format_name(self) -> str:
        return _FORMAT_NAMES[self.format]


@dataclass(frozen=True)
class ParseStats:
    """Raw counts over the triples (all concepts, deprecated included)."""

    triples: int
    concepts: int
    deprecated: int
    pref_labels: int
    alt_labels: int
    broader: int
    narrower: int
    related: int
    definitions: int
    top_concepts: int
    live_pref_labels: int
    live_alt_labels: int
    control_characters: int = 0  # labels and notes from which control characters were removed
    empty_labels: int = 0  # labels and notes dropped because they are empty after whitespace normalisation


#: The most a source may hold, read or decompressed (ELSST release 5 is 4 MB gzipped, 60 MB as RDF/XML): a bound, so
#: that a device (``/dev/zero``), a stream or a gzip bomb is refused instead of read until memory runs out.
MAX_SOURCE_BYTES = 2 * 2**30


def _too_large(name: str) -> DataError:
    return DataError(f"source {name} holds more than {MAX_SOURCE_BYTES // 2**30} GiB; is it a SKOS thesaurus?")


def read_source(source: str | Path, fmt: str | None = None, timeout: float = 30.0) -> Source:
    """Read a path or URL into a :class:`Source`; gzip is detected from the magic bytes. A path must be a regular
    file, and no source may exceed :data:`MAX_SOURCE_BYTES`, before or after decompression."""
    text = str(source)
    if re.match(r"^https?://", text):
        try:
            with urllib.request.urlopen(text, timeout=timeout) as response:  # noqa: S310 (user-given URL)
                raw = response.read(MAX_SOURCE_BYTES + 1)
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise DataError(f"cannot download {text}: {reason} (offline? pass a local file with --source)") from err
        name = text.rstrip("/").rsplit("/", 1)[-1] or text
    else:
        path = Path(text).expanduser()
        if not path.exists():
            raise DataError(f"source file {path} does not exist")
        if path.is_dir():
            raise DataError(f"source {path} is a directory; pass a SKOS file (RDF/XML, Turtle or N-Triples)")
        if not path.is_file():
            raise DataError(f"source {path} is not a regular file (a device, a pipe or a socket); pass a SKOS file "
                            "(RDF/XML, Turtle or N-Triples)")
        if path.stat().st_size > MAX_SOURCE_BYTES:
            raise _too_large(path.name)
        try:
            raw = path.read_bytes()
        except OSError as err:
            raise DataError(f"cannot read source {path}: {err.strerror or err}") from None
        name = path.name
    if len(raw) > MAX_SOURCE_BYTES:
        raise _too_large(name)
    digest = hashlib.sha256(raw).hexdigest()
    data = raw
    if raw[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
                data = stream.read(MAX_SOURCE_BYTES + 1)
        except (EOFError, OSError, zlib.error) as err:
            raise DataError(f"{name}: gzip data is truncated or corrupt ({err})") from err
        if len(data) > MAX_SOURCE_BYTES:
            raise _too_large(name)
    stem = name[:-3] if name.endswith(".gz") else name
    return Source(name=name, data=data, sha256=digest, format=_detect_format(stem, data, fmt))


def _detect_format(name: str, data: bytes, fmt: str | None) -> "ox.RdfFormat":
    if fmt:
        try:
            return _FORMATS[fmt.lower().replace("-", "").replace("/", "")]
        except KeyError:
            raise DataError(f"unknown RDF format {fmt!r}; known: rdfxml, turtle, ntriples") from None
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix in _FORMATS:
        return _FORMATS[suffix]
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"<?xml", b"<rdf:RDF", b"<RDF")):
        return ox.RdfFormat.RDF_XML
    return ox.RdfFormat.TURTLE  # Turtle is a superset of N-Triples


_ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def clean_text(text: str) -> str:
    """``text`` without control characters: an ANSI escape sequence is removed whole, any other control
    character becomes a space. Tab, line feed and carriage return stay (whitespace, normalised by the tasks)."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(" ", _ANSI_ESCAPE.sub("", text))


_XML_MISC = re.compile(rb"\s*(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE\s[^\[>]*(?:\[.*?\]\s*)?>)", re.S)
_XML_ROOT = re.compile(rb"\s*<([A-Za-z_][-\w.]*(?::[A-Za-z_][-\w.]*)?)(?=[\s>]|/>)")


def _check_xml_complete(source: Source) -> None:
    """Raise DataError when an XML document ends before its root element is closed (a cut file)."""
    data = source.data
    pos = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    while (match := _XML_MISC.match(data, pos)) and match.end() > pos:
        pos = match.end()
    root = _XML_ROOT.match(data, pos)
    if root is None:
        return  # not XML at all: the parser says what is wrong
    end = len(data)
    while True:  # skip trailing whitespace, comments and processing instructions
        while end > pos and data[end - 1] in b" \t\r\n":
            end -= 1
        opener = b"<!--" if data.endswith(b"-->", 0, end) else b"<?" if data.endswith(b"?>", 0, end) else None
        start = data.rfind(opener, pos, end) if opener else -1
        if start <= pos:
            break
        end = start
    name = root.group(1)
    closed = re.compile(rb"</" + re.escape(name) + rb"\s*>").fullmatch
    tail = max(pos, end - len(name) - 256)
    if any(closed(data, i, end) for i in [data.rfind(b"</", tail, end)] if i >= 0):
        return
    if data.endswith(b"/>", 0, end) and data.find(b"<", root.start(1), end) == -1:
        return  # the root is one empty element
    raise DataError(f"{source.name}: RDF/XML is truncated: the document ends before its root element "
                    f"<{name.decode('ascii')}> is closed")


def concept_id(uri: str) -> str:
    """Version-independent id: the UUID inside the URI, else the local name."""
    match = _UUID.search(uri)
    if match:
        return match.group(0).lower()
    local = re.split(r"[/#]", uri.rstrip("/#"))[-1]
    return local or uri


def parse(source: Source) -> tuple[Thesaurus, ParseStats]:
    """Parse SKOS triples into a Thesaurus. Raises DataError on malformed RDF or no skos:Concept."""
    types: set[str] = set()
    schemes: set[str] = set()
    deprecated: set[str] = set()
    top: set[str] = set()
    pref: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    alt: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    notes: dict[str, dict[str, dict[str, list[str]]]] = {
        "definition": defaultdict(lambda: defaultdict(list)),
        "scopeNote": defaultdict(lambda: defaultdict(list)),
    }
    links: dict[str, dict[str, set[str]]] = {
        "broader": defaultdict(set),
        "narrower": defaultdict(set),
        "related": defaultdict(set),
    }
    version: dict[str, str] = {}
    counts = defaultdict(int)
    triples = 0
    concept_type = SKOS + "Concept"
    scheme_type = SKOS + "ConceptScheme"

    def text(value: str) -> str | None:
        cleaned = clean_text(value)
        counts["control_characters"] += cleaned is not value
        if not cleaned.split():
            counts["empty_labels"] += 1
            return None
        return cleaned

    if source.format == ox.RdfFormat.RDF_XML:
        _check_xml_complete(source)
    try:
        for quad in ox.parse(source.data, format=source.format, base_iri="http://localhost/"):
            triples += 1
            p = quad.predicate.value
            if not (p.startswith(SKOS) or p.startswith(OWL) or p == RDF_TYPE):
                continue
            s = quad.subject.value
            o = quad.object
            if p == RDF_TYPE:
                if o.value == concept_type:
                    types.add(s)
                elif o.value == scheme_type:
                    schemes.add(s)
                continue
            local = p[len(SKOS):] if p.startswith(SKOS) else None
            if local in ("prefLabel", "altLabel"):
                lang = (getattr(o, "language", None) or "und").lower()
                if (value := text(o.value)) is not None:
                    (pref if local == "prefLabel" else alt)[s][lang].append(value)
                    counts[local] += 1
            elif local in links:
                links[local][s].add(o.value)
                counts[local] += 1
            elif local in notes:
                lang = (getattr(o, "language", None) or "und").lower()
                if (value := text(o.value)) is not None:
                    notes[local][s][lang].append(value)
                    counts[local] += 1
            elif local == "topConceptOf":
                top.add(s)
            elif local == "hasTopConcept":
                top.add(o.value)
            elif p == OWL + "deprecated":
                if str(o.value).strip().lower() in ("true", "1"):
                    deprecated.add(s)
            elif p == OWL + "versionInfo":
                version.setdefault(s, o.value)
    except SyntaxError as err:
        first = str(err).splitlines()[0] if str(err) else "syntax error"
        raise DataError(f"{source.name}: malformed {source.format_name} RDF: {first}") from err
    except (ValueError, OSError) as err:
        raise DataError(f"{source.name}: cannot parse as {source.format_name}: {err}") from err
    if not types:
        raise DataError(f"{source.name}: no skos:Concept found ({triples} triples read); is this a SKOS thesaurus?")

    ids = {uri: concept_id(uri) for uri in types}
    if len(set(ids.values())) != len(ids):  # local names collide: fall back to full URIs
        ids = {uri: uri for uri in types}

    def resolve(targets: set[str]) -> tuple[str, ...]:
        return tuple(sorted(ids[t] for t in targets if t in ids))

    concepts: dict[str, Concept] = {}
    for uri in types:
        concepts[ids[uri]] = Concept(
            id=ids[uri],
            uri=uri,
            labels={lang: sorted(values)[0] for lang, values in sorted(pref[uri].items())},
            alt={lang: sorted(set(values)) for lang, values in sorted(alt[uri].items())},
            definitions={lang: " ".join(sorted(v)) for lang, v in sorted(notes["definition"][uri].items())},
            scope_notes={lang: " ".join(sorted(v)) for lang, v in sorted(notes["scopeNote"][uri].items())},
            broader=resolve(links["broader"][uri]),
            narrower=resolve(links["narrower"][uri]),
            related=resolve(links["related"][uri]),
            top=uri in top,
            deprecated=uri in deprecated,
        )
    scheme_uri = sorted(schemes)[0] if schemes else None
    scheme = {"uri": scheme_uri, "version": version.get(scheme_uri) if scheme_uri else None}
    live = {uri for uri in types if uri not in deprecated}
    stats = ParseStats(
        triples=triples,
        concepts=len(types),
        deprecated=len(deprecated & types),
        pref_labels=counts["prefLabel"],
        alt_labels=counts["altLabel"],
        broader=counts["broader"],
        narrower=counts["narrower"],
        related=counts["related"],
        definitions=counts["definition"],
        top_concepts=len(top & types),
        live_pref_labels=sum(len(v) for uri in live for v in pref[uri].values()),
        live_alt_labels=sum(len(v) for uri in live for v in alt[uri].values()),
        control_characters=counts["control_characters"],
        empty_labels=counts["empty_labels"],
    )
    return Thesaurus(concepts, scheme), stats


def claimed_release(thesaurus: Thesaurus) -> str | None:
    """The ELSST release a thesaurus says it is (an ELSST scheme URI with a numeric version), else None."""
    version = (thesaurus.scheme.get("version") or "").strip()
    return version if "elsst" in (thesaurus.scheme.get("uri") or "") and version.isdigit() else None


def is_published_release(release: str | None, source: Source) -> bool:
    """Whether ``source`` is, byte for byte, the published file of ELSST ``release``."""
    return release in PUBLISHED_RELEASES and source.sha256 == PUBLISHED_RELEASES[release]["sha256"]


def source_warnings(thesaurus: Thesaurus, stats: ParseStats, source: Source) -> list[str]:
    """What deserves a warning about a source that parsed: a claimed release it is not, repaired texts."""
    out = []
    release = claimed_release(thesaurus)
    if release in PUBLISHED_RELEASES and not is_published_release(release, source):
        expected = PUBLISHED_RELEASES[release]["live_concepts"]
        live = len(thesaurus.live_ids)
        if live != expected:
            out.append(f"{source.name} claims to be ELSST release {release} but has {live:,} live concepts where "
                       f"the release has {expected:,}: a truncated or altered file? It is not prepared as "
                       f"release {release}")
        else:
            out.append(f"{source.name} claims to be ELSST release {release} but is not its published file "
                       f"(sha256 {source.sha256[:12]}…, published {PUBLISHED_RELEASES[release]['sha256'][:12]}…); "
                       f"it gets its own dataset id")
    if stats.control_characters:
        out.append(f"{source.name}: control characters removed from {stats.control_characters:,} labels or notes")
    if stats.empty_labels:
        out.append(f"{source.name}: {stats.empty_labels:,} labels or notes dropped because they are empty")
    return out


def load(source: str | Path, fmt: str | None = None) -> tuple[Thesaurus, ParseStats, Source]:
    """Read and parse a SKOS source in one call."""
    src = read_source(source, fmt)
    thesaurus, stats = parse(src)
    return thesaurus, stats, src
