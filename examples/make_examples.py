"""Write the example notebooks 02–05 (without outputs) from the cells listed here.

    .venv/bin/python examples/make_examples.py        # rewrites examples/0[2-5]-*.ipynb

Edit the cells below, not the .ipynb files, then run this script. Cell ids are derived from the notebook's
name and the cell's position, so regenerating an unchanged notebook gives the same file. Each notebook
starts in demo mode when no key is set (`%aihubmix demo auto`), so it runs offline; with AIHUBMIX_API_KEY
set, the same cells ask the real models on AiHubMix. (01-quickstart.ipynb is written by hand.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat import v4

HERE = Path(__file__).resolve().parent

SETUP = "%load_ext aihubmix_magic\n%aihubmix demo auto"
DEMO_NOTE = ("Without a key, `%aihubmix demo auto` answers from the **built-in simulator**: the answers are "
             "simulated (clearly marked) and nothing leaves the machine. With `AIHUBMIX_API_KEY` set before "
             "Jupyter starts, or after `%aihubmix key`, the same cells ask the real models on AiHubMix.")


def md(text: str) -> tuple[str, str]:
    return ("markdown", text.strip("\n"))


def code(text: str) -> tuple[str, str]:
    return ("code", text.strip("\n"))


def failing(text: str) -> tuple[str, str]:
    """A code cell that raises on purpose (tagged `raises-exception`, so the notebook runs on)."""
    return ("failing", text.strip("\n"))


NOTEBOOKS: dict[str, list[tuple[str, str]]] = {}

NOTEBOOKS["02-control-panel"] = [
    md("""
# The control panel: choose a model and its settings with the mouse

The `%%aihubmix` magic reads its settings (model, endpoint, temperature, system prompt, …) from one place,
`aihubmix_magic.settings`. The **control panel** is a set of widgets tied to those settings *both ways*:
move a slider and the next cell uses the new value; change a setting in code and the slider moves.

Good for a class: students can try temperatures or models without learning any options first.

""" + DEMO_NOTE),
    code(SETUP),
    md("""
## Open the panel

`%aihubmix panel` shows it. The model list is fetched in the background from `/v1/models`, so the panel
appears at once. The status line at the bottom says which server is used, whether a key is set (never the
key itself), and what the last call cost.
"""),
    code("%aihubmix panel"),
    md("""
## Ask a question

Pick a model or move the temperature slider in the panel above, then run this cell. The footer under the
answer names the model that answered, the tokens used and how fast the answer came.
"""),
    code("""
%%aihubmix
Explain photosynthesis to a 12-year-old, with a heading and a short list of the three things a plant needs.
"""),
    md("""
## Settings from code move the panel too

Everything the panel shows is a setting: `%aihubmix use MODEL`, `%config AihubmixMagics.…` and
`aihubmix_magic.settings` change it, and the panel above follows. Scroll up after running this cell.
"""),
    code("""
from aihubmix_magic import settings

%aihubmix use claude-sonnet-4-5
settings.temperature = 0.3
settings.system = "You are a patient teacher. Use simple words."
%config AihubmixMagics.max_tokens = 300
%aihubmix config
"""),
    code("""
%%aihubmix
Why is the sky blue? Answer in bold first, then explain.
"""),
    md("""
## Options on the cell win, for that cell only

An option on the `%%aihubmix` line overrides the panel for one cell; the next cell uses the panel again.
"""),
    code("""
%%aihubmix -m gpt-4o-mini -t 1.2 -s "You are a poet."
Describe the water cycle in four short lines.
"""),
    code("""
from aihubmix_magic import last_response

r = last_response()
print(r.model, "at temperature", r.request.get("temperature"), "| the panel still says", settings.model)
"""),
    md("""
## A second panel stays in sync

`aihubmix_magic.panel()` returns the widget, so you can place it anywhere (in a dashboard, next to a
plot). Two panels show the same settings: move one and the other follows.
"""),
    code("""
import aihubmix_magic

aihubmix_magic.panel()
"""),
    md("""
## Back to the defaults

Settings last for this kernel session only. Put them back for the next lesson:
"""),
    code("""
settings.temperature = None
settings.system = ""
settings.max_tokens = None
%aihubmix use gpt-4o-mini
"""),
]

NOTEBOOKS["03-data-exploration"] = [
    md("""
# Data exploration: label 40 product reviews with a model, then summarise them with pandas

A common task in data science: a column of free text (here, product reviews) that we want to turn into
categories we can count and plot. We will

1. load a small CSV of reviews with pandas,
2. try one prompt on one review,
3. label **every** review with `aihubmix_magic.batch(...)`: the requests run concurrently, with a
   progress bar, and the answers come back as a pandas Series aligned with the DataFrame,
4. summarise and plot the labels, and compare them with the star ratings the customers gave.

""" + DEMO_NOTE + """

In demo mode the labels are simulated: the simulator reads each review with a small list of positive and
negative words, so its labels mostly agree with the star ratings, as a real model's should. With a real
key, the reviews where the model and the stars disagree are worth discussing with students.
"""),
    code(SETUP),
    md("""
## Re-running costs nothing: the response cache

With the cache on, an identical request is answered from a local SQLite file instead of the network, and
the footer says "cached". Handy when a whole class re-runs the same notebook.
"""),
    code("%aihubmix cache on"),
    md("## The data"),
    code("""
import pandas as pd

df = pd.read_csv("data/reviews.csv")
print(df.shape)
df.head()
"""),
    md("""
## Ask about the data itself: `--context df`

`--context df` puts a compact description of the DataFrame into the prompt: its shape, the columns with
their dtypes and null counts, `describe()` of the numeric columns and the first 5 rows (never the whole
table; `settings.context_max_tokens` caps it). The collapsed **Context sent** block above the answer shows
exactly what was sent.
"""),
    code("""
%%aihubmix --context df
Which columns could explain a low rating? Suggest two plots to check it.
"""),
    md("""
With `-f code` the answer is code, put into a new cell below; thanks to the context it uses the real
column names.
"""),
    code("""
%%aihubmix --context df -f code
Write code to plot the mean rating per product.
"""),
    md("""
## One review first

Always try a prompt on one example before running it on everything. `{df.review[0]}` inserts the first
review into the prompt (a *template*: names in braces are filled in from the notebook).
"""),
    code("""
%%aihubmix -m gpt-4o-mini
Is this product review positive, neutral or negative? Answer in one word, then give a one-line reason.

Review: {df.review[0]}
"""),
    md("""
## Every review, as structured data

For data we can count, we ask for **JSON that follows a schema**: a sentiment and a topic, each from a
fixed list. `batch()` fills the template once per row (`{product}` and `{review}` are columns), sends the
requests eight at a time and returns the answers in the DataFrame's order.
"""),
    md("""
Forty requests cost little, but it is good to know before sending them: `estimate=True` sends nothing and
says what the batch would cost, from the model catalog's prices (an estimate: the answers' length is
assumed unless `max_tokens` caps it).
"""),
    code("""
from aihubmix_magic import batch

batch(df, template="Label this review of a {product}.\\n\\nReview: {review}", model="gpt-4o-mini", estimate=True)
"""),
    code("""
import json

LABEL_SCHEMA = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
        "topic": {"type": "string", "enum": ["quality", "comfort", "delivery", "price", "service"]},
    },
    "required": ["sentiment", "topic"],
    "additionalProperties": False,
}

answers = batch(
    df,
    template="Label this review of a {product}.\\n\\nReview: {review}",
    model="gpt-4o-mini",
    system="You label customer reviews for a shop. Answer with JSON only.",
    response_format={"type": "json_schema",
                     "json_schema": {"name": "review_label", "schema": LABEL_SCHEMA, "strict": True}},
    concurrency=8,
)
answers.head()
"""),
    md("""
The line under the progress bar is the batch summary (also in `answers.attrs["summary"]`), with what the
batch cost (an estimate). Each answer is
a JSON text; `json.loads` turns it into columns we can join to the data. An item that failed is missing
(`NaN`), so `dropna()` leaves it out.
"""),
    code("""
labels = answers.dropna().map(json.loads).apply(pd.Series)
df = df.join(labels)
df[["product", "rating", "sentiment", "topic", "review"]].head(10)
"""),
    md("""
## Summarise

How many reviews of each kind per product, and does the model's sentiment agree with the stars?
"""),
    code("""
counts = pd.crosstab(df["product"], df["sentiment"])
counts
"""),
    code("""
df.groupby("sentiment")["rating"].agg(["count", "mean"]).round(2)
"""),
    md("## Plot"),
    code("""
import matplotlib.pyplot as plt

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
counts.plot.barh(stacked=True, ax=left, title="Sentiment per product")
df.groupby("sentiment")["rating"].mean().plot.bar(ax=right, title="Mean star rating per sentiment", rot=0)
right.set_ylabel("stars")
fig.tight_layout()
plt.show()
"""),
    md("""
## The same in one cell: `%%aihubmix --over`

`--over` runs the cell once per item; `{}` stands for the item. The answers are shown as a table and,
with `-o`, kept in a variable (here a Series with the DataFrame's index).
"""),
    code("""
%%aihubmix --over df.review.head(5) -o summaries -m gpt-4o-mini
Summarise this review in at most eight words: {}
"""),
    code("""
df.loc[summaries.index, ["product", "rating"]].assign(summary=summaries)
"""),
    md("Run the notebook again: the cache answers every request, and the batch summary says so."),
    code("%aihubmix cache info"),
]

NOTEBOOKS["04-teaching-compare"] = [
    md("""
# Teaching with several models: compare answers, reasoning effort and structured output

AiHubMix puts many models (OpenAI, Anthropic, Google, DeepSeek, …) behind one key. In class this lets
students see that models **differ**: in style, in length, in speed and in cost. This notebook shows

- the same question sent to three models at once, side by side,
- how *reasoning effort* changes the work a reasoning model does,
- asking for **structured JSON** (a quiz question) that Python can use directly,
- `%aihubmix fix`: an explanation of a student's error, and the corrected code (or only a hint),
- saved prompts and model aliases, so that a class shares the same prompts.

""" + DEMO_NOTE),
    code(SETUP),
    md("""
## A budget for the class

With one key for a whole class, set a budget for the session: once the answers have cost that much (an
estimate from AiHubMix's price list), the next call is refused with one line saying how to raise it.
"""),
    code("%aihubmix budget 0.50"),
    md("""
## Three models, one question

`--compare` sends the prompt to every model listed, at the same time, and streams the answers in columns.
Each column has its own footer: tokens, what the answer cost (an estimate), time to the first token,
tokens per second.
"""),
    code("""
%%aihubmix --compare gpt-4o-mini,claude-sonnet-4-5,gemini-2.5-flash
Explain recursion to a 14-year-old in three sentences, with a short code example.
"""),
    md("""
`last_response()` is now a `Comparison`; `.to_dataframe()` makes a table of the numbers, for a
discussion about speed and cost.
"""),
    code("""
from aihubmix_magic import last_response

comparison = last_response()
comparison.to_dataframe()
"""),
    md("""
## Reasoning effort

Reasoning models "think" before they answer. `-r` (`--reasoning-effort`) asks for more or less of that
work: `low` is quicker and cheaper, `high` is more careful. The reasoning tokens are counted in the usage.
(In demo mode the simulator thinks the same amount at every effort; with a real key, compare the numbers.)
"""),
    code("""
%%aihubmix -m o4-mini -r low -o quick
A bat and a ball cost $1.10 in total. The bat costs $1.00 more than the ball. How much is the ball?
"""),
    code("""
%%aihubmix -m o4-mini -r high -o careful
A bat and a ball cost $1.10 in total. The bat costs $1.00 more than the ball. How much is the ball?
"""),
    code("""
for name, r in [("low", quick), ("high", careful)]:
    print(f"effort {name:>4}: {r.usage.reasoning_tokens} reasoning tokens, "
          f"{r.usage.output_tokens} output tokens, {r.elapsed:.1f} s")
"""),
    md("""
## Structured output: a quiz question as JSON

With `-f json --schema Quiz`, the model must answer with JSON that follows the schema below. The parsed
value is in `last_response().parsed`, ready to use in Python: here, to run a tiny quiz.
"""),
    code("""
concept = "the water cycle"
Quiz = {
    "type": "object",
    "properties": {
        "question": {"type": "string"},
        "choices": {"type": "array", "items": {"type": "string"}},
        "answer": {"type": "string"},
        "explanation": {"type": "string"},
    },
    "required": ["question", "choices", "answer", "explanation"],
}
"""),
    code("""
%%aihubmix -m gpt-4o-mini -f json --schema Quiz
Write one multiple-choice question about the water cycle for 12-year-olds, with four choices.
"""),
    code("""
quiz = last_response().parsed
print(quiz["question"])
for letter, choice in zip("ABCD", quiz["choices"]):
    print(f"  {letter}. {choice}")
print("Answer:", quiz["answer"])
"""),
    md("""
## When a cell fails: `%aihubmix fix`

A student's cell fails. `%aihubmix fix` sends the failing cell, its traceback (as plain text) and a
description of the notebook names the cell uses; the answer explains the error and the corrected code
goes into a new cell below (in VS Code and Colab, which cannot insert cells, copy it from the answer).
"""),
    failing("""
def mean(values):
    return sum(values) / len(value)

mean([12, 15, 9])
"""),
    code("%aihubmix fix"),
    md("""
For teaching, `settings.fix_style = "hint"` asks for a **hint** instead: where to look and what to check,
never the corrected code. `%aihubmix fix --explain` explains without any code.
"""),
    code("""
from aihubmix_magic import settings

settings.fix_style = "hint"
%aihubmix fix
settings.fix_style = "fix"
"""),
    md("""
## A prompt pack for the class, and model aliases

`%aihubmix save NAME` saves the previous `%%aihubmix` cell (its options and its template) as
`.aihubmix/prompts/NAME.md` next to the notebook: commit that folder with the course, and every student
has the same prompts. `%%aihubmix -p NAME` runs one (text in the cell is added; options on the line win),
`%aihubmix prompts` lists them. An alias names a model for the class: `-m fast`.
"""),
    code("""
%%aihubmix -m gpt-4o-mini -s "You are a patient teacher. Use simple words." -t 0.3
Explain {concept} to a 12-year-old in three sentences.
"""),
    code("""
%aihubmix save explain-simply
%aihubmix alias fast gpt-4o-mini
%aihubmix prompts
"""),
    code("""
concept = "evaporation"
"""),
    code("""
%%aihubmix -p explain-simply -m fast
Add an everyday example.
"""),
    md("""
## What did this lesson cost?

`%aihubmix cost` adds up this session's answers by model. `%aihubmix models --features thinking` lists the
reasoning models with their prices per million tokens.
"""),
    code("%aihubmix cost"),
    md("""
## Ideas for the classroom

- Compare a small and a large model on a question from your subject: which answer would get the better
  mark, and what did each cost?
- Ask students to find a prompt on which the models disagree.
- Turn a schema like `Quiz` into a worksheet generator with `aihubmix_magic.batch(...)`.
"""),
]

NOTEBOOKS["05-responses-api"] = [
    md("""
# The Responses API: a conversation, an image, and saving the session

AiHubMix offers two OpenAI-compatible endpoints: Chat Completions (`/v1/chat/completions`, the default)
and the newer **Responses API** (`/v1/responses`), chosen with `-e responses`. This notebook uses the
Responses API to

- hold a **conversation** over several cells (`-c` continues it, `--thread NAME` keeps a named one),
- ask about an **image** (a matplotlib chart made right here),
- **export** the session as a notebook that can be handed out or re-run.

""" + DEMO_NOTE),
    code(SETUP),
    md("""
## A conversation

Normally each `%%aihubmix` cell stands alone: the model does not remember the cell before. With `-c`
(`--continue`) the cell continues the previous exchange, so the model sees what was said.
"""),
    code("""
%%aihubmix -e responses -m gpt-4o-mini
I am planning a 45-minute science lesson on the water cycle for 12-year-olds. Suggest a plan as a list.
"""),
    code("""
%%aihubmix -e responses -m gpt-4o-mini -c
Now shorten it to 20 minutes and keep the experiment.
"""),
    md("`%aihubmix history` shows the conversation so far:"),
    code("%aihubmix history"),
    md("""
## A named thread

`--thread NAME` keeps a separate conversation that other cells don't disturb, e.g. one per student group.
"""),
    code("""
%%aihubmix -e responses -m gpt-4o-mini --thread quiz
Give me one quiz question about evaporation.
"""),
    code("""
%%aihubmix -e responses -m gpt-4o-mini --thread quiz
Now a harder one on the same topic.
"""),
    md("""
## An image

`--image` sends a picture with the prompt: a file, a URL, or a PIL image or matplotlib figure from the
notebook. Here we draw a chart and ask the model to describe it, as for a student who cannot see it.
"""),
    code("""
import matplotlib.pyplot as plt

months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun"]
rainfall = [78, 60, 55, 48, 52, 45]
fig, ax = plt.subplots(figsize=(5, 3))
ax.bar(months, rainfall, color="tab:blue")
ax.set_title("Rainfall per month (mm)")
ax.set_ylabel("mm")
plt.show()
"""),
    code("""
%%aihubmix -e responses -m gpt-4o-mini --image fig
Describe this chart in two sentences for a student who cannot see it.
"""),
    md("""
## Save the session as a notebook

`%aihubmix export FILE.ipynb` writes every prompt of this session with its answer: each one as the
`%%aihubmix` cell that asks it again, with model, tokens and timings in the cell metadata. The API key is
never written. `--thread NAME` exports one conversation only.
"""),
    code("""
%aihubmix export exported-lesson.ipynb
%aihubmix export exported-quiz.ipynb --thread quiz
"""),
    code("""
import nbformat

exported = nbformat.read("exported-quiz.ipynb", as_version=4)
for cell in exported.cells:
    if cell.cell_type == "code" and cell.source.startswith("%%aihubmix"):
        print(cell.source, "\\n  ->", cell.metadata["aihubmix"]["usage"], "\\n")
"""),
]

NOTEBOOKS["06-tools"] = [
    md("""
# Tools: let the model call your Python functions, with your approval

A model cannot see your data, but it can ask to **call a function** you wrote, and answer with what the
function returned. `%%aihubmix --tools NAME` offers functions from the notebook to the model. Each call is
shown in the cell before it runs and waits for you: **Run**, **Skip**, or **Always for this cell**. The
function runs here, in the kernel, on your data; only its result (as text) goes to the model.

This notebook offers a query tool over the 40 product reviews of notebook 03, then shows what the cell
keeps: the steps, their calls and results, the tokens of every step.

""" + DEMO_NOTE + """

In demo mode the simulated model calls the first tool it is offered, with arguments made up from the
function's description, and then answers with the result. The cells below use `--yes` (run every call
without asking) so the notebook also runs unattended; remove it to get the Run / Skip buttons.
"""),
    code(SETUP),
    md("""
## A tool is a documented Python function

The model is told the function's name, its docstring's first paragraph, and its parameters: their types
from the type hints (a `Literal` becomes a list of allowed values), their defaults, and the text of the
`Args:` section. Nothing else about your notebook is sent.
"""),
    code('''
from typing import Literal

import pandas as pd

reviews = pd.read_csv("data/reviews.csv")


def rating_summary(group_by: Literal["product", "rating"] = "product", top: int = 5) -> pd.DataFrame:
    """The number of reviews and the mean star rating per group, the best rated first.

    Args:
        group_by: the column to group the reviews by
        top: how many groups to return
    """
    table = reviews.groupby(group_by)["rating"].agg(reviews="count", mean_rating="mean")
    return table.sort_values("mean_rating", ascending=False).head(top).round(2)


def count_reviews(word: str) -> int:
    """How many reviews mention a word (case does not matter).

    Args:
        word: the word to look for, e.g. "leaking"
    """
    return int(reviews["review"].str.contains(word, case=False).sum())
'''),
    md("`Tool.from_function` shows exactly what the model is told:"),
    code("""
from aihubmix_magic import Tool

Tool.from_function(rating_summary).definition("chat")
"""),
    md("""
## Ask a question the data answers

Each call becomes a collapsed block above the answer (`rating_summary(group_by='product', top=3) → …`):
click it to see the arguments and the whole result. The footer counts the steps and sums the tokens of
every request.
"""),
    code("""
%%aihubmix --tools rating_summary,count_reviews --yes
Which products do customers like best? Use the review data.
"""),
    md("""
## What the cell kept

`last_response()` is the final answer; `.steps` holds each step: the model's intermediate answer and the
calls it asked for, with their arguments, whether they were approved, their result or error and their
time. `.usage` is the sum over every step.
"""),
    code("""
from aihubmix_magic import last_response

r = last_response()
for step in r.steps:
    for call in step.calls:
        print(f"step {step.number}: {call.signature()} approved={call.approved} in {call.elapsed:.3f} s")
        print(call.result[:300])
print("tokens for the whole exchange:", r.usage.input_tokens, "->", r.usage.output_tokens)
"""),
    md("""
## The same from Python, and for many questions at once

`Client.chat(..., tools=[f, g])` and `batch(..., tools=[...])` run the same loop. A batch cannot stop to
ask, so it needs `approve=True` or a function that decides, e.g. to allow only read-only tools:
"""),
    code("""
from aihubmix_magic import batch

answers = batch(["Which product is rated best?", "How many reviews mention 'leaking'?"],
                tools=[rating_summary, count_reviews],
                approve=lambda call: call.name in ("rating_summary", "count_reviews"))
for answer in answers:
    print(answer.status, "|", len(answer.steps), "step(s) |", answer.text[:120].replace("\\n", " "))
"""),
    md("""
## Tools from MCP servers

Tools are often shared as **MCP servers** (the Model Context Protocol): a database, a file system, a search
engine or your company's APIs, configured once for your editor. `%%aihubmix --mcp NAME` offers the tools of
the servers named in `mcp.json`, the same file Claude Desktop, VS Code and Cursor read:
`{"mcpServers": {"NAME": {"command": …, "args": […], "env": {…}}}}` for a server the kernel starts (stdio),
or `{"url": "https://…/mcp", "headers": {…}}` for a remote one (streamable HTTP). It is looked up in
`.aihubmix/mcp.json` next to the notebook, then in your personal folder, as saved prompts are. MCP needs
the SDK: `pip install 'aihubmix-magic[mcp]'`.

This folder ships a small server over the same reviews, `reviews_server.py`. The cell below writes the
config for it (a team would commit `.aihubmix/mcp.json` with the notebooks):
"""),
    code("""
import json
import sys
from pathlib import Path

Path(".aihubmix").mkdir(exist_ok=True)
config = {"mcpServers": {"reviews": {"command": sys.executable, "args": ["reviews_server.py"]}}}
Path(".aihubmix/mcp.json").write_text(json.dumps(config, indent=2))
print(Path(".aihubmix/mcp.json").read_text())
"""),
    md("""
`%aihubmix mcp` starts the configured servers and lists them: where each was found, whether it starts, and
its tools. The values of `env` and `headers` (tokens, passwords) are never shown. A server starts on first
use and is kept for the kernel's life; later cells reuse it.
"""),
    code("""
%aihubmix mcp
"""),
    md("""
The server's tools go through the same loop as Python functions: the same Run / Skip / Always prompt (here
`--yes`), the same step blocks, `--max-steps`, and `last_response().steps`. `--mcp` and `--tools` combine.
A tool that fails, a server that crashes or one that does not answer within `settings.tool_timeout` seconds
becomes the call's error, which the model is told, as when a Python function raises.
"""),
    code("""
%%aihubmix --mcp reviews --yes
Do customers complain about leaking?
"""),
    code("""
[(call.signature(), call.output[:80]) for step in last_response().steps for call in step.calls]
"""),
    md("""
## Web search

`--web` lets the model search the web (the hosted tool on AiHubMix; some models need their `-search`
variant). The sources it cites are listed under the answer and kept in `last_response().citations`.
"""),
    code("""
%%aihubmix --web -e responses
What is new in pandas this year? Two sentences.
"""),
    code("""
[(c.title, c.url) for c in last_response().citations]
"""),
]


def build(name: str, cells: list[tuple[str, str]]):
    nb = v4.new_notebook()
    for number, (kind, source) in enumerate(cells):
        cell = v4.new_markdown_cell(source) if kind == "markdown" else v4.new_code_cell(source)
        if kind == "failing":
            cell.metadata["tags"] = ["raises-exception"]
        cell.id = f"{name[:2]}-{number:02d}"
        nb.cells.append(cell)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.validate(nb)
    return nb


def main() -> int:
    for name, cells in NOTEBOOKS.items():
        path = HERE / f"{name}.ipynb"
        nbformat.write(build(name, cells), path)
        print(f"wrote {path.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
