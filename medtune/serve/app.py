"""`medtune serve --ui`: the Gradio app over one Answerer (also what a Space made by `medtune space` runs).

The answer shows every option's probability as a bar, from the same scorer as `medtune eval`;
the explanation, when asked for, is greedy and bounded. With the generative scorer the answer is the
letter read from the model's reply, the reply follows it, and the reasoning sits collapsed below
(an HTML <details> element) with the number of tokens generated; the rule that read the answer is
named. The page names the model, adapter and backend (no path of this machine), and says plainly that
this is a research tool, not medical advice. Requests wait in a bounded queue and run one at a time;
with a token the app asks for it on a login form; an internal error shows no details.
"""

from __future__ import annotations

import html
from typing import Any

from medtune.data.schema import LETTERS, MAX_OPTIONS, MIN_OPTIONS
from medtune.errors import MedtuneError
from medtune.eval.scorers import is_generative
from medtune.serve.answer import NOTICE, Answerer, public_info
from medtune.serve.limits import MAX_QUEUE_QUESTIONS
from medtune.serve.question import Question

START_OPTIONS = 4
CSS = """
#medtune-answer .mt-head {font-size: 1.1em; margin-bottom: .6em}
#medtune-answer .mt-row {display: grid; grid-template-columns: minmax(6em, 1fr) minmax(8em, 1.2fr) 4.5em; gap: .6em;
  align-items: center; margin: .25em 0}
#medtune-answer .mt-bar {background: #e5e7eb; border-radius: 4px; height: 1.1em; overflow: hidden}
#medtune-answer .mt-fill {background: #60a5fa; height: 100%}
#medtune-answer .mt-best .mt-fill {background: #2563eb}
#medtune-answer .mt-pct {text-align: right; font-variant-numeric: tabular-nums}
#medtune-notice {border-left: 4px solid #f59e0b; padding-left: .8em}
#medtune-answer .mt-reply, #medtune-answer .mt-reasoning pre {white-space: pre-wrap; margin: .4em 0}
#medtune-answer .mt-reasoning summary {cursor: pointer; color: #4b5563}
#medtune-answer .mt-none {color: #b91c1c}
"""


def render_bars(options: list[str], result: dict) -> str:
    """The answer and a probability bar per option, as HTML (data-* attributes carry exact values)."""
    rows = []
    for j, opt in enumerate(options):
        letter = LETTERS[j]
        p = result["probabilities"][letter]
        best = " mt-best" if letter == result["answer"] else ""
        rows.append(f'<div class="mt-row{best}" data-letter="{letter}" data-prob="{p:.6f}">'
                    f'<span class="mt-label">{letter}. {html.escape(opt)}</span>'
                    f'<div class="mt-bar"><div class="mt-fill" style="width:{p * 100:.1f}%"></div></div>'
                    f'<span class="mt-pct">{p:.1%}</span></div>')
    head = (f'<div class="mt-head">Answer: <b>{result["answer"]}</b>. {html.escape(result["answer_text"])} '
            f'<span class="mt-scorer">({result["scorer"]} scorer)</span></div>')
    abstain = bool(result.get("abstain"))
    if abstain:
        why = html.escape(result["abstain_reason"])
        head = f'<div class="mt-head mt-none" id="medtune-abstain">Abstain: {why}</div>{head}'
    return (f'<div id="medtune-answer" data-answer="{result["answer"]}" data-abstain="{str(abstain).lower()}">{head}'
            f'{"".join(rows)}</div>')


def render_generated(options: list[str], result: dict) -> str:
    """A generative answer as HTML: the letter read (or why none was), the reply, the reasoning collapsed."""
    if result["answer"] is None:
        head = ('<div class="mt-head mt-none">No answer could be read from the reply '
                f'<span class="mt-scorer">(generate scorer, rule {html.escape(result["extraction"])})</span></div>')
    else:
        head = (f'<div class="mt-head">Answer: <b>{result["answer"]}</b>. {html.escape(result["answer_text"])} '
                f'<span class="mt-scorer">(generate scorer, rule {html.escape(result["extraction"])})</span></div>')
    reply = f'<div class="mt-reply">{html.escape(result.get("reply") or "")}</div>'
    reasoning = result.get("reasoning") or ""
    details = (f'<details class="mt-reasoning"><summary>Reasoning ({len(reasoning)} characters, '
               f'{result.get("new_tokens", 0)} tokens generated)</summary><pre>{html.escape(reasoning)}</pre></details>'
               if reasoning else "")
    answer = result["answer"] or ""
    return f'<div id="medtune-answer" data-answer="{answer}" data-scorer="generate">{head}{reply}{details}</div>'


def render_result(options: list[str], result: dict) -> str:
    """The answer as HTML, whichever scorer gave it."""
    return render_generated(options, result) if is_generative(result.get("scorer")) else render_bars(options, result)


def example_rows(n: int = 4) -> list[list[str]]:
    """A few questions from the MedMCQA sample shipped with medtune (question and four options)."""
    from medtune.data.sources import load_benchmark

    items, _ = load_benchmark(["medmcqa-dev"])
    picked = [it for it in items if len(it.options) == START_OPTIONS and len(it.question) < 200][:n]
    return [[it.question, *it.options] for it in picked]


def info_markdown(answerer: Answerer) -> str:
    """One line naming what answers: model, adapter, backend, scorer, template."""
    info = public_info(answerer.info())
    be = info["backend"]
    adapter = f" + adapter `{info['adapter']}`" if info["adapter"] else ""
    thinking = f" (thinking {'on' if info['thinking'] else 'off'})" if info.get("thinking") is not None else ""
    return (f"**Model** `{info['model']}`{adapter} · **backend** {be['kind']} ({be['name']}, {be['dtype']}) · "
            f"**scorer** {info['scorer']}{thinking} · **template** {info['template']} · medtune {info['medtune']}")


def build_app(answerer: Answerer, examples: bool = True, max_queue: int = MAX_QUEUE_QUESTIONS) -> Any:
    """The Gradio Blocks app: one answer at a time, at most `max_queue` requests waiting."""
    import gradio as gr

    def answer(question: str, count: int, explain: bool, *options: str) -> tuple[str, str]:
        opts = [o for o in options[: int(count)]]
        try:
            q = Question(question or "", opts)
            q.check()
            result = answerer.answer([q], explain=explain)[0]
        except MedtuneError as err:
            raise gr.Error(err.render()) from None
        text = result.get("explanation") or ""
        return render_result(opts, result), (f"**Explanation** (greedy, generated by the model): {text}"
                                           if explain and text else "")

    def resize(count: int, delta: int) -> list:
        count = max(MIN_OPTIONS, min(MAX_OPTIONS, int(count) + delta))
        return [count] + [gr.update(visible=i < count) for i in range(MAX_OPTIONS)]

    with gr.Blocks(title="medtune: clinical multiple-choice QA") as demo:
        gr.Markdown("# medtune · clinical multiple-choice QA")
        gr.Markdown(f"⚠️ **{NOTICE}**", elem_id="medtune-notice")
        gr.Markdown(info_markdown(answerer), elem_id="medtune-model")
        with gr.Row():
            with gr.Column(scale=3):
                question = gr.Textbox(label="Question", lines=3, elem_id="medtune-question")
                option_boxes = [gr.Textbox(label=f"Option {LETTERS[i]}", visible=i < START_OPTIONS,
                                           elem_id=f"medtune-option-{LETTERS[i]}") for i in range(MAX_OPTIONS)]
                count = gr.State(START_OPTIONS)
                with gr.Row():
                    add = gr.Button("+ option", elem_id="medtune-add", size="sm")
                    remove = gr.Button("− option", elem_id="medtune-remove", size="sm")
                explain = gr.Checkbox(label="Explain the answer (slower; greedy generation)",
                                      elem_id="medtune-explain", visible=not is_generative(answerer.scorer))
                go = gr.Button("Answer", variant="primary", elem_id="medtune-go")
            with gr.Column(scale=2):
                out = gr.HTML(elem_id="medtune-result")
                why = gr.Markdown(elem_id="medtune-explanation")
        add.click(lambda c: resize(c, 1), count, [count, *option_boxes])
        remove.click(lambda c: resize(c, -1), count, [count, *option_boxes])
        go.click(answer, [question, count, explain, *option_boxes], [out, why], api_name="answer")
        if examples:
            rows = example_rows()
            if rows:
                gr.Examples(rows, [question, *option_boxes[:START_OPTIONS]],
                            label="Examples from the shipped MedMCQA sample")
    return demo.queue(default_concurrency_limit=1, max_size=max_queue)


def launch(answerer: Answerer, host: str = "127.0.0.1", port: int = 7860, token: str | None = None,
           max_queue: int = MAX_QUEUE_QUESTIONS, **kwargs: Any) -> Any:
    """Start the app and return it (blocking unless prevent_thread_lock=True is passed); with `token`, behind a
    login form whose password is the token (any user name)."""
    demo = build_app(answerer, max_queue=max_queue)
    demo.launch(server_name=host, server_port=port, css=CSS, show_error=False, auth=login(token),
                auth_message="medtune: the password is the server's token", **kwargs)
    return demo


def login(token: str | None) -> Any:
    """Gradio's auth check for `token` (None: no login form)."""
    if not token:
        return None
    import hmac

    return lambda user, password: hmac.compare_digest(str(password).encode(), token.encode())
