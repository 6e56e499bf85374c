"""`persian-data explore`: the web app. Server-rendered pages (Jinja2), a little JavaScript, right to left.

Sections: Clips (per speech corpus and split, filters, audio, rejects), Conversations (search,
review examples per rule, near-duplicate pairs), Evals (runs, utterances by WER with word
alignments, two runs side by side), Voices (serve-tts's page, its API under /tts/). Files from the
root come through /media/ (files.py). Everything is read only; the index (index.py) is the one
thing written, outside the data.

Pages are built by `Pages` (one method per page); `create_app` wires them to routes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from .. import __version__
from ..catalog import DEFAULT_SPEECH_SOURCE
from ..layout import Layout
from ..source import Source
from ..tts.page import ASSETS_URL, PAGE_HEADERS, WEB_DIR, panel_context, template_environment
from . import files, queries
from . import sources as found
from .evals import columns, corpus_key, percent, read_results
from .index import Index
from .markup import FILTERS, with_query
from .review import chat_stats, near_duplicates, read_review
from .voices import LazyVoices

log = logging.getLogger("persian_data.explore")

HERE = Path(__file__).parent
SECTIONS = (("/", "خانه", "overview"), ("/clips", "کلیپ‌ها", "clips"), ("/conversations", "گفتگوها", "conversations"),
            ("/evals", "ارزیابی‌ها", "evals"), ("/voices", "صداها", "voices"))
REFRESH_EVERY = 2.0  # seconds between two freshness checks of the same inputs


def _int(value: Any, default: int = 1, low: int = 1, high: int = 10**7) -> int:
    try:
        return min(high, max(low, int(value)))
    except (TypeError, ValueError):
        return default


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # not nan


class Pages:
    """One method per page; each returns (template, context) or a ready response."""

    def __init__(self, root: Path, index: Index, voices: LazyVoices) -> None:
        self.root = root
        self.index = index
        self.catalog = index.catalog  # the root's corpora
        self.voices = voices
        self.env = template_environment([HERE / "templates"])
        self.env.filters.update(FILTERS)
        self.env.globals.update(with_query=with_query, percent=percent, sections=SECTIONS, assets=ASSETS_URL,
                                version=__version__)

    def render(self, request: Request, template: str, section: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(request=request, section=section, root=str(self.root),
                                                      params=dict(request.query_params), **context)
        return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)

    def message(self, request: Request, section: str, title: str, text: str, status: int = 404,
                hint: str | None = None) -> HTMLResponse:
        return self.render(request, "message.html", section, status=status, title=title, text=text, hint=hint)

    def _refresh(self, *kinds: str) -> None:
        self.index.refresh(kinds, every=REFRESH_EVERY)

    # -- overview ------------------------------------------------------------------------------

    def overview(self, request: Request) -> HTMLResponse:
        self._refresh("clips", "rejects", "chat", "eval")
        speech = []
        for corpus in found.speech_corpora(self.root, self.catalog):
            speech.append({"corpus": corpus, "splits": queries.split_summary(self.index, corpus),
                           "rejects": sum(n for _, n in queries.reject_reasons(self.index, corpus.key))})
        chat = [{"corpus": c, "counts": queries.conversation_counts(self.index, c.key)}
                for c in found.chat_corpora(self.root, self.catalog)]
        runs = self._runs()
        return self.render(request, "overview.html", "overview", speech=speech, chat=chat, runs=runs,
                           voices=self.voices.listing(), index_path=str(self.index.path),
                           sources=self.index.source_rows(), problems=self.index.problems,
                           unprepared_speech=found.speech_corpora_not_prepared(self.root, self.catalog),
                           unprepared_text=found.chat_corpora_not_prepared(self.root, self.catalog))

    # -- clips ---------------------------------------------------------------------------------

    def clips(self, request: Request) -> HTMLResponse:
        self._refresh("clips", "rejects")
        corpora = found.speech_corpora(self.root, self.catalog)
        if not corpora:
            return self.message(request, "clips", "کلیپی نیست", "No speech corpus has manifests under "
                                f"{self.root}/datasets/speech/*/manifests/ yet.", status=200,
                                hint=f"persian-data prepare speech --root {self.root}")
        p = request.query_params
        corpus = next((c for c in corpora if c.key == p.get("corpus")), None)
        if p.get("corpus") and corpus is None:
            return self.message(request, "clips", "پیکره پیدا نشد", f"No speech corpus {p.get('corpus')!r} here; "
                                f"known: {', '.join(c.key for c in corpora)}.")
        corpus = corpus or corpora[0]
        db = self.index.reader()
        summary = queries.split_summary(self.index, corpus)
        if not corpus.manifests:
            return self.render(request, "clips.html", "clips", corpora=corpora, corpus=corpus, split=None,
                               summary=summary, page=None, genders=[],
                               reasons=queries.reject_reasons(self.index, corpus.key),
                               problem=f"{corpus.key} has no manifest in {corpus.folder}/manifests/ (run `persian-data "
                                       f"prepare speech --root {self.root}`).")
        split = p.get("split") if p.get("split") in corpus.manifests else next(iter(corpus.manifests))
        flt = queries.ClipFilter(corpus.key, split, q=p.get("q", ""), gender=p.get("gender", ""),
                                 speaker=p.get("speaker", ""), min_duration=_float(p.get("min")),
                                 max_duration=_float(p.get("max")), sort=p.get("sort", ""))
        page = queries.clips(db, flt, _int(p.get("page")))
        problem = self.index.problems.get(f"clips:{corpus.key}:{split}")
        return self.render(request, "clips.html", "clips", corpora=corpora, corpus=corpus, split=split, flt=flt,
                           summary=summary, page=page, genders=queries.genders(db, corpus.key, split),
                           reasons=queries.reject_reasons(self.index, corpus.key), problem=problem)

    def rejects(self, request: Request) -> HTMLResponse:
        self._refresh("rejects")
        corpora = found.speech_corpora(self.root, self.catalog)
        p = request.query_params
        corpus = next((c for c in corpora if c.key == p.get("corpus")), corpora[0] if corpora else None)
        if corpus is None:
            return self.message(request, "clips", "پیکره پیدا نشد", "No speech corpus has manifests here yet.",
                                hint=f"persian-data prepare speech --root {self.root}")
        db = self.index.reader()
        reason = p.get("reason", "")
        return self.render(request, "rejects.html", "clips", corpora=corpora, corpus=corpus, reason=reason,
                           reasons=queries.reject_reasons(self.index, corpus.key),
                           page=queries.rejects(db, corpus.key, reason, _int(p.get("page"))))

    # -- conversations -------------------------------------------------------------------------

    def _chat_corpus(self, request: Request):
        corpora = found.chat_corpora(self.root, self.catalog)
        wanted = request.query_params.get("corpus")
        corpus = next((c for c in corpora if c.key == wanted), None if wanted else (corpora[0] if corpora else None))
        return corpora, corpus

    def _no_chat(self, request: Request, corpora) -> HTMLResponse:
        wanted = request.query_params.get("corpus")
        if corpora and wanted:
            return self.message(request, "conversations", "پیکره پیدا نشد", f"No chat corpus {wanted!r} here; known: "
                                f"{', '.join(c.key for c in corpora)}.")
        missing = found.chat_corpora_not_prepared(self.root, self.catalog)
        where = f" ({', '.join(missing)} has no combined.jsonl yet)" if missing else ""
        return self.message(request, "conversations", "گفتگویی نیست",
                            f"No chat corpus with a combined.jsonl under {self.root}/datasets/text/{where}.",
                            status=200, hint=f"persian-data prepare text --root {self.root}")

    def conversations(self, request: Request) -> HTMLResponse:
        self._refresh("chat")
        corpora, corpus = self._chat_corpus(request)
        if corpus is None:
            return self._no_chat(request, corpora)
        p = request.query_params
        db = self.index.reader()
        page = queries.conversations(db, corpus.key, corpus.combined, p.get("q", ""), bool(p.get("pii")),
                                     _int(p.get("page")))
        return self.render(request, "conversations.html", "conversations", corpora=corpora, corpus=corpus, page=page,
                           counts=queries.conversation_counts(self.index, corpus.key), tab="search",
                           problem=self.index.problems.get(f"chat:{corpus.key}"))

    def review(self, request: Request) -> HTMLResponse:
        corpora, corpus = self._chat_corpus(request)
        if corpus is None:
            return self._no_chat(request, corpora)
        return self.render(request, "review.html", "conversations", corpora=corpora, corpus=corpus, tab="review",
                           rules=read_review(corpus.review), stats=chat_stats(corpus.stats))

    def near_duplicates(self, request: Request) -> HTMLResponse:
        corpora, corpus = self._chat_corpus(request)
        if corpus is None:
            return self._no_chat(request, corpora)
        return self.render(request, "near_duplicates.html", "conversations", corpora=corpora, corpus=corpus,
                           tab="near", near=near_duplicates(corpus.stats))

    # -- evals ---------------------------------------------------------------------------------

    def _runs(self) -> list[dict[str, Any]]:
        out = []
        for run in found.eval_runs(self.root):
            out.append({"run": run, "results": read_results(run.results),
                        "indexed": queries.eval_summary(self.index, run.name)})
        return out

    def evals(self, request: Request) -> HTMLResponse:
        self._refresh("eval")
        runs = self._runs()
        if not runs:
            return self.message(request, "evals", "ارزیابی‌ای نیست", f"No eval run under {self.root}/evals/ yet.",
                                status=200, hint=f"persian-data eval-stt --root {self.root} --corpus "
                                                 f"{DEFAULT_SPEECH_SOURCE.key} --split test --hypotheses preds.jsonl")
        return self.render(request, "evals.html", "evals", runs=runs)

    def _run(self, name: str):
        return next((r for r in found.eval_runs(self.root) if r.name == name), None)

    def eval_run(self, request: Request, name: str) -> HTMLResponse:
        self._refresh("eval", "clips")
        run = self._run(name)
        if run is None:
            return self.message(request, "evals", "ارزیابی پیدا نشد", f"No eval run {name!r} under {self.root}/evals/.")
        p = request.query_params
        db = self.index.reader()
        results = read_results(run.results)
        page = queries.eval_utterances(db, run.name, run.utterances, p.get("sort", "wer"), bool(p.get("errors")),
                                       _int(p.get("page")))
        corpus = corpus_key(results, self.catalog)
        audio = queries.clips_by_ids(db, corpus, [r["id"] for r in page.rows]) if corpus else {}
        for row in page.rows:
            row["columns"] = columns(row["utterance"])
            row["clip"] = audio.get(row["id"])
        others = [r.name for r in found.eval_runs(self.root) if r.name != run.name]
        return self.render(request, "eval_run.html", "evals", run=run, results=results, page=page, others=others,
                           problem=self.index.problems.get(f"eval:{run.name}"))

    def compare(self, request: Request) -> HTMLResponse:
        self._refresh("eval", "clips")
        p = request.query_params
        a, b = self._run(p.get("a", "")), self._run(p.get("b", ""))
        if a is None or b is None:
            missing = ", ".join(repr(x) for x, r in ((p.get("a", ""), a), (p.get("b", ""), b)) if r is None)
            return self.message(request, "evals", "ارزیابی پیدا نشد", f"No eval run {missing} under {self.root}/evals/;"
                                " pick two runs on the Evals page.")
        db = self.index.reader()
        ra, rb = read_results(a.results), read_results(b.results)
        sources = self.index.source_rows()
        digests = tuple((sources.get(f"eval:{r.name}") or {"sha256": ""})["sha256"] for r in (a, b))
        page = queries.compared_utterances(db, a.name, a.utterances, b.name, b.utterances, _int(p.get("page")),
                                           digests=digests)
        corpus = corpus_key(ra, self.catalog)
        audio = queries.clips_by_ids(db, corpus, [r["id"] for r in page.rows]) if corpus else {}
        for row in page.rows:
            row["columns_a"], row["columns_b"] = columns(row["a"]), columns(row["b"])
            row["clip"] = audio.get(row["id"])
        return self.render(request, "eval_compare.html", "evals", a=a, b=b, ra=ra, rb=rb, page=page)

    # -- voices --------------------------------------------------------------------------------

    def voices_page(self, request: Request) -> HTMLResponse:
        self.voices.start()
        voices = self.voices.listing()
        unavailable = self.voices.error
        if not voices and unavailable is None:
            unavailable = (f"No voice under {self.root}/datasets/tts/ yet: persian-data fetch --root {self.root} "
                           "--only tts")
        return self.render(request, "voices.html", "voices", state=self.voices.state,
                           **panel_context(voices, api_base="/tts/", unavailable=unavailable))

    # -- files ---------------------------------------------------------------------------------

    def media(self, request: Request, path: str):
        try:
            real = files.resolve(self.root, path)
        except files.Refused as refused:
            return PlainTextResponse(f"{refused.status}: {refused.reason}", status_code=refused.status)
        return FileResponse(real, media_type=files.content_type(real, path),
                            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=300"})


def create_app(root: Path, *, index: Index | None = None, allowed_hosts: list[str] | None = None,
               max_chars: int = 5000, catalog: tuple[Source, ...] | None = None) -> FastAPI:
    """The explore app over `root` (its index built or checked here, before the first page). `catalog`:
    the root's corpora (default: the five and those its persian-data.toml declares)."""
    root = Path(root).absolute()
    index = index or Index(root, catalog=catalog)
    index.refresh()
    pages = Pages(root, index, LazyVoices(Layout(root), max_chars=max_chars))
    app = FastAPI(title="persian-data explore", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    if allowed_hosts:  # a page on another site cannot reach this server through DNS rebinding
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.mount(ASSETS_URL, StaticFiles(directory=WEB_DIR), name="tts-assets")
    app.mount("/tts", pages.voices, name="tts")
    app.add_api_route("/", pages.overview, methods=["GET"], response_class=HTMLResponse)
    app.add_api_route("/clips", pages.clips, methods=["GET"], response_class=HTMLResponse)
    app.add_api_route("/clips/rejects", pages.rejects, methods=["GET"], response_class=HTMLResponse)
    app.add_api_route("/conversations", pages.conversations, methods=["GET"], response_class=HTMLResponse)
    app.add_api_route("/conversations/review", pages.review, methods=["GET"], response_class=HTMLResponse)
    app.add_api_route("/conversations/near-duplicates", pages.near_duplicates, methods=["GET"],
                      response_class=HTMLResponse)
    app.add_api_route("/evals", pages.evals, methods=["GET"], response_class=HTMLResponse)
    app.add_api_route("/evals/compare", pages.compare, methods=["GET"], response_class=HTMLResponse)
    app.add_api_route("/evals/run/{name}", pages.eval_run, methods=["GET"], response_class=HTMLResponse)
    app.add_api_route("/voices", pages.voices_page, methods=["GET"], response_class=HTMLResponse)
    app.add_api_route("/media/{path:path}", pages.media, methods=["GET", "HEAD"])

    async def not_found(request: Request, exc: StarletteHTTPException):
        if exc.status_code != 404:
            return PlainTextResponse(str(exc.detail), status_code=exc.status_code)
        return pages.message(request, "", "صفحه پیدا نشد", f"Nothing at {request.url.path}.")

    app.add_exception_handler(StarletteHTTPException, not_found)
    app.state.index = index
    app.state.pages = pages
    return app
