"""Trains a tiny randomly initialised model with TRL on every view of a traj dataset directory.

    python trl_train_check.py DATASET_DIR [--steps N] [--views v1,v2] [--max-length N]

DATASET_DIR is the `--out` of `traj build` (TRL format): DATASET_DIR/{train,validation,test}/<view>.jsonl.
Per view:
- SFT views (planner_sft, worker_sft, verifier_sft, and worker_recovery_cases when it has rows):
  `SFTTrainer(assistant_only_loss=True)` (prompt-completion rows: completion-only loss);
- verifier_pref_pairs (paired preference): `DPOTrainer`, explicit reference model;
- verifier_kto, worker_kto (unpaired preference, `label` a bool): `KTOTrainer` (`from trl import
  KTOTrainer`, the stable API since `trl.experimental.kto` was deprecated), explicit reference model;
  the train split must hold both labels, else the view FAILs;
- worker_prm (stepwise supervision: `prompt`, `completions`, `labels`): TRL 1.16 has NO PRM trainer
  (PRMTrainer was removed from TRL), so this trains a randomly initialised `LlamaForTokenClassification`
  (num_labels=2) with a plain `transformers.Trainer`, tokenised the way TRL's former PRMTrainer did:
  BOS + prompt tokens, then each step's tokens followed by a step separator token, the step's label at the
  separator and -100 everywhere else. The separator is a dedicated special token (`<|step|>`), not
  PRMTrainer's default "\n", because traj's step texts contain newlines.
It asserts that every logged loss is finite and that the loss falls (mean of the last few logged losses
below the mean of the first few; for KTO, whose sequential batches are the same on every pass, the mean
over the last full pass below the mean over the first, on at most --kto-max-rows train rows so that
there are several passes), evaluates once on validation+test, and prints one JSON summary line per view
on stdout (`trainer`: sft, dpo, kto or prm_token_classification). Logs go to stderr. Exit status 1 with a
`FAIL` line per failing view, 2 on bad usage.

Nothing is downloaded: the tokenizer is a byte-level BPE trained here on the rows' own text, with a
ChatML-like Jinja chat template (system/user/assistant/tool turns, several tool calls per assistant
message, the `tools` list, `{% generation %}` markers); the model is a 2-layer Llama built from a config.
Needs the venv made by tests/python/install-trl-venv.sh (torch, transformers, trl, datasets, tokenizers).
"""
import argparse
import atexit
import contextlib
import copy
import json
import math
import os
import pathlib
import shutil
import sys
import tempfile
import time
import traceback
import warnings

# Hermetic and offline before any Hugging Face import: no hub, no telemetry, no GPU, caches in a temp dir.
_HF_HOME = tempfile.mkdtemp(prefix="traj-trl-hf-")
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)
os.environ.update({
    "HF_HOME": _HF_HOME,
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "WANDB_DISABLED": "true",
    "CUDA_VISIBLE_DEVICES": "",
})
# One thread: the model is tiny, so more threads buy little, and on a busy 2-core machine (a cargo build
# beside the tests) OpenMP's spinning threads made a run 4x slower (182 s against 46 s).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DATASETS_VERBOSITY", "error")

import datasets  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset, Features, Json, List, Value  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import (  # noqa: E402
    DataCollatorForTokenClassification,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForTokenClassification,
    PreTrainedTokenizerFast,
    Trainer,
    TrainingArguments,
)
from transformers.trainer_callback import PrinterCallback  # noqa: E402
from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer, SFTConfig, SFTTrainer  # noqa: E402

datasets.disable_progress_bars()
# Deprecation notices of the pinned stack are not findings about traj's rows.
warnings.filterwarnings("ignore", category=FutureWarning)

SPLITS = ["train", "validation", "test"]
SFT_VIEWS = ["planner_sft", "worker_sft", "verifier_sft", "worker_recovery_cases"]
PREF_VIEW = "verifier_pref_pairs"
KTO_VIEWS = ["verifier_kto", "worker_kto"]
PRM_VIEW = "worker_prm"
ALL_VIEWS = SFT_VIEWS + [PREF_VIEW] + KTO_VIEWS + [PRM_VIEW]
# Views that may be empty (a run set with no recovered tool failure has no recovery case).
OPTIONAL_VIEWS = {"worker_recovery_cases"}

BOS, EOS, PAD = "<|begin|>", "<|im_end|>", "<|pad|>"
STEP_SEP = "<|step|>"  # ends each step of a stepwise (PRM) row; the step's label sits on it
SPECIAL_TOKENS = [PAD, BOS, "<|im_start|>", EOS, STEP_SEP]

# ChatML-like, robust to what real agent conversations hold: content that is empty, null or a list of
# parts; assistant messages with several tool calls (OpenAI `{"function": {...}}` or flat `{name,
# arguments}`), arguments as an object or as a JSON string; tool messages with or without a name; a
# missing or empty `tools`; extra keys (ignored). The assistant's text, tool calls and end-of-turn token
# are inside `{% generation %}` so `assistant_only_loss=True` trains on them and on nothing else.
CHAT_TEMPLATE = r"""
{%- macro text(content) -%}
{%- if content is string -%}{{ content }}
{%- elif content is iterable and content is not mapping -%}
{%- for part in content -%}
{%- if part is string -%}{{ part }}
{%- elif part is mapping and part.text is string -%}{{ part.text }}
{%- elif part is mapping and part.content is string -%}{{ part.content }}
{%- endif -%}
{%- endfor -%}
{%- endif -%}
{%- endmacro -%}
{{- bos_token -}}
{%- if tools -%}
{{- '<|im_start|>tools\n' -}}
{%- for tool in tools -%}
{%- set fn = tool.function if (tool is mapping and tool.function is mapping) else tool -%}
{%- if fn is string -%}{{ fn }}{%- else -%}{{ fn | tojson }}{%- endif -%}
{{- '\n' -}}
{%- endfor -%}
{{- '<|im_end|>\n' -}}
{%- endif -%}
{%- for message in messages -%}
{%- set role = message.role if message.role is string else 'user' -%}
{%- if role == 'assistant' -%}
{{- '<|im_start|>assistant\n' -}}
{%- generation -%}
{{- text(message.content) -}}
{%- if message.tool_calls -%}
{%- for call in message.tool_calls -%}
{%- set fn = call.function if (call.function is defined and call.function is mapping) else call -%}
{{- '\n<tool_call>' -}}
{{- {'name': fn.name} | tojson -}}
{{- '\n' -}}
{%- if fn.arguments is string -%}{{ fn.arguments }}
{%- elif fn.arguments is defined and fn.arguments is not none -%}{{ fn.arguments | tojson }}
{%- else -%}{}
{%- endif -%}
{{- '</tool_call>' -}}
{%- endfor -%}
{%- endif -%}
{{- '<|im_end|>' -}}
{%- endgeneration -%}
{{- '\n' -}}
{%- elif role == 'tool' -%}
{{- '<|im_start|>tool' -}}
{%- if message.name is string and message.name -%}{{ ' ' + message.name }}{%- endif -%}
{%- if message.tool_call_id is string and message.tool_call_id -%}{{ ' ' + message.tool_call_id }}{%- endif -%}
{{- '\n' + text(message.content) + '<|im_end|>\n' -}}
{%- else -%}
{{- '<|im_start|>' + role + '\n' + text(message.content) + '<|im_end|>\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\n' -}}
{%- endif -%}
"""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class CheckFailed(Exception):
    pass


# --- loading -----------------------------------------------------------------------------------

def read_jsonl(path):
    rows = []
    if not path.is_file():
        return rows
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise CheckFailed(f"{path}:{n}: not JSON: {e}") from e
        if not isinstance(row, dict):
            raise CheckFailed(f"{path}:{n}: a row must be a JSON object")
        rows.append(row)
    return rows


def check_messages(msgs, where):
    if not isinstance(msgs, list) or not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in msgs):
        raise CheckFailed(f"{where}: expected a list of messages with a string `role`")
    return msgs


def tools_of(row, where):
    tools = row.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise CheckFailed(f"{where}: `tools` must be a list of objects")
    return tools


def sft_rows(raw, where):
    """Conversational rows (`messages`) or prompt-completion rows (`prompt` + `completion`: only
    the completion is learned, as traj writes recovery cases)."""
    out = []
    for i, row in enumerate(raw):
        w = f"{where} row {i}"
        if "completion" in row:
            prompt = check_messages(row.get("prompt"), f"{w} `prompt`")
            completion = check_messages(row.get("completion"), f"{w} `completion`")
            if not completion or completion[-1]["role"] != "assistant":
                raise CheckFailed(f"{w}: the completion must end with an assistant message")
            out.append({"prompt": prompt, "completion": completion, "tools": tools_of(row, w)})
            continue
        msgs = check_messages(row.get("messages"), w)
        if not any(m["role"] == "assistant" for m in msgs):
            raise CheckFailed(f"{w}: no assistant message to train on")
        out.append({"messages": msgs, "tools": tools_of(row, w)})
    return out


def pref_rows(raw, where):
    out = []
    for i, row in enumerate(raw):
        w = f"{where} row {i}"
        r = {k: check_messages(row.get(k), f"{w} `{k}`") for k in ("prompt", "chosen", "rejected")}
        if not r["chosen"] or not r["rejected"]:
            raise CheckFailed(f"{w}: empty chosen or rejected")
        r["tools"] = tools_of(row, w)
        out.append(r)
    return out


def kto_rows(raw, where):
    """TRL unpaired preference rows: `prompt` (messages), `completion` (one assistant turn), `label` (bool)."""
    out = []
    for i, row in enumerate(raw):
        w = f"{where} row {i}"
        prompt = check_messages(row.get("prompt"), f"{w} `prompt`")
        completion = check_messages(row.get("completion"), f"{w} `completion`")
        if not prompt:
            raise CheckFailed(f"{w}: empty prompt")
        if not completion or completion[-1]["role"] != "assistant":
            raise CheckFailed(f"{w}: the completion must end with an assistant message")
        if not isinstance(row.get("label"), bool):
            raise CheckFailed(f"{w}: `label` must be a JSON boolean, got {row.get('label')!r}")
        out.append({"prompt": prompt, "completion": completion, "label": row["label"], "tools": tools_of(row, w)})
    return out


def prm_rows(raw, where):
    """TRL stepwise supervision rows (standard form): `prompt` (text), `completions` (one text per step),
    `labels` (one bool per step)."""
    out = []
    for i, row in enumerate(raw):
        w = f"{where} row {i}"
        prompt, steps, labels = row.get("prompt"), row.get("completions"), row.get("labels")
        if not isinstance(prompt, str):
            raise CheckFailed(f"{w}: `prompt` must be a string (stepwise rows are in standard, text form)")
        if not isinstance(steps, list) or not steps or not all(isinstance(x, str) for x in steps):
            raise CheckFailed(f"{w}: `completions` must be a non-empty list of strings")
        if not isinstance(labels, list) or not all(isinstance(x, bool) for x in labels):
            raise CheckFailed(f"{w}: `labels` must be a list of booleans")
        if len(labels) != len(steps):
            raise CheckFailed(f"{w}: {len(steps)} completions but {len(labels)} labels")
        out.append({"prompt": prompt, "completions": steps, "labels": labels})
    return out


ROWS_OF = {PREF_VIEW: pref_rows, PRM_VIEW: prm_rows, **{v: kto_rows for v in KTO_VIEWS}}


def to_dataset(rows, columns):
    # Each message / tool is one JSON value (datasets' `Json` feature), as written: no dependence on
    # Arrow's inference, which makes structs of the union of keys (a message gains `tool_call_id: null`)
    # and must fall back on mixed types. `metadata` is dropped here (lineage, not training).
    features = Features({c: Value("bool") if c == "label" else List(Json()) for c in columns})
    return Dataset.from_list([{c: r[c] for c in columns} for r in rows], features=features)


def load_view(ds_dir, view):
    """Returns {split: [rows]} of a view (metadata dropped), and the raw rows for the tokenizer corpus."""
    by_split, raw_all = {}, []
    for split in SPLITS:
        path = ds_dir / split / f"{view}.jsonl"
        raw = read_jsonl(path)
        raw_all.extend(raw)
        by_split[split] = ROWS_OF.get(view, sft_rows)(raw, path)
    return by_split, raw_all


# --- tokenizer and model -----------------------------------------------------------------------

def corpus_of(rows):
    """The text a chat-templated row is made of (contents, tool calls, tool schemas)."""
    def msg_text(m):
        c = m.get("content")
        parts = [c if isinstance(c, str) else json.dumps(c, sort_keys=True)] if c is not None else []
        for call in m.get("tool_calls") or []:
            parts.append(json.dumps(call, sort_keys=True))
        return "\n".join(parts)

    for row in rows:
        for key in ("messages", "prompt", "completion", "chosen", "rejected"):
            value = row.get(key)
            if isinstance(value, str):  # stepwise rows: a text prompt
                yield value
                continue
            for m in value or []:
                if isinstance(m, dict):
                    yield msg_text(m)
        for step in row.get("completions") or []:  # stepwise rows: one text per step
            if isinstance(step, str):
                yield step
        for t in row.get("tools") or []:
            yield json.dumps(t.get("function", t) if isinstance(t, dict) else t)


def build_tokenizer(texts, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=["<|im_start|>", STEP_SEP],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "right"
    return fast


def check_template(tokenizer):
    """The template renders a hard conversation and the assistant mask is exactly the assistant turns."""
    msgs = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "", "extra": {"ignored": True}},
        {"role": "assistant", "content": "",
         "tool_calls": [
             {"id": "a", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}},
             {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{\"y\":2}"}},
         ]},
        {"role": "tool", "tool_call_id": "a", "name": "f", "content": "one"},
        {"role": "tool", "tool_call_id": "b", "content": None},
        {"role": "assistant", "content": [{"type": "text", "text": "done"}]},
    ]
    tools = [{"type": "function", "function": {"name": "f", "description": "", "parameters": {"type": "object"}}}]
    text = tokenizer.apply_chat_template(msgs, tools=tools, tokenize=False)
    for want in ('{"name": "f"', '{"x": 1}', '{"y":2}', "<|im_start|>tool f a\none", "done<|im_end|>", "<|im_start|>tools\n"):
        if want not in text:
            raise CheckFailed(f"chat template self-check: {want!r} not in {text!r}")
    out = tokenizer.apply_chat_template(msgs, tools=tools, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True)
    masked = tokenizer.decode([t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m])
    want = ('\n<tool_call>{"name": "f"}\n{"x": 1}</tool_call>\n<tool_call>{"name": "g"}\n'
            '{"y":2}</tool_call><|im_end|>done<|im_end|>')
    if masked != want:
        raise CheckFailed(f"chat template self-check: assistant mask covers {masked!r}, want {want!r}")
    # No tools, and a generation prompt that the completion continues.
    prompt = tokenizer.apply_chat_template(msgs[:2], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(msgs[:3], tokenize=False)
    if not full.startswith(prompt) or "<|im_start|>tools" in prompt:
        raise CheckFailed(f"chat template self-check: prompt {prompt!r} is not a prefix of {full!r}")


def build_model(tokenizer, seed, max_length, cls=LlamaForCausalLM, **extra):
    transformers.set_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_length,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )
    return cls(config)


# --- training ----------------------------------------------------------------------------------

def logged_losses(trainer):
    return [e["loss"] for e in trainer.state.log_history if "loss" in e and "train_loss" not in e]


def check_losses(view, losses, steps, window, epoch=None):
    """The mean of the first `window` logged losses against the mean of the last `window`; or, given
    `epoch` (the number of batches of one pass when the batches are the same every pass: KTO's sequential
    sampling), the mean over the first pass against the mean over the last full pass, batch for batch,
    since there one batch's loss depends more on its rows than on the step."""
    if epoch:
        passes = len(losses) // epoch
        if passes < 2:
            raise CheckFailed(f"{view}: {len(losses)} losses logged in {steps} steps: fewer than 2 passes of "
                              f"{epoch} batches")
        first_window, last_window = losses[:epoch], losses[(passes - 1) * epoch: passes * epoch]
        what = f"pass 1 and pass {passes} over the same {epoch} batches"
    else:
        if len(losses) < 2 * window:
            raise CheckFailed(f"{view}: only {len(losses)} losses logged in {steps} steps (want >= {2 * window})")
        first_window, last_window = losses[:window], losses[-window:]
        what = f"the first and the last {window} logged losses"
    bad = [(i + 1, x) for i, x in enumerate(losses) if not math.isfinite(x)]
    if bad:
        raise CheckFailed(f"{view}: non-finite loss at logged step(s) {bad[:5]}")
    first = sum(first_window) / len(first_window)
    last = sum(last_window) / len(last_window)
    if not last < first:
        raise CheckFailed(f"{view}: loss did not fall: mean of {what}: {first:.4f} then {last:.4f}; "
                          f"losses {[round(x, 4) for x in losses]}")
    return first, last


def common_args(out_dir, args, n_train):
    return dict(
        output_dir=str(out_dir),
        max_steps=args.steps,
        per_device_train_batch_size=min(args.batch_size, n_train),
        per_device_eval_batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        # TRL's configs turn it on; on a 2-layer model it only recomputes every forward (a third slower).
        gradient_checkpointing=False,
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=args.seed,
        data_seed=args.seed,
        use_cpu=True,
        bf16=False,
        fp16=False,
        dataloader_num_workers=0,
        max_length=args.max_length,
    )


def prm_tokenize(row, tokenizer, max_length):
    """A stepwise row as TRL's former PRMTrainer tokenised it (standard form, no chat template): BOS +
    prompt, then per step its tokens and the separator; the step's label (0/1) at the separator, -100
    elsewhere. Truncated on the right to max_length."""
    sep = tokenizer.convert_tokens_to_ids(STEP_SEP)
    input_ids = [tokenizer.bos_token_id] + tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
    labels = [-100] * len(input_ids)
    for step, good in zip(row["completions"], row["labels"]):
        ids = tokenizer(step, add_special_tokens=False)["input_ids"]
        if sep in ids:
            raise CheckFailed(f"a step's text holds the separator token {STEP_SEP!r}: {step!r}")
        input_ids += ids + [sep]
        labels += [-100] * len(ids) + [int(good)]
    input_ids, labels = input_ids[:max_length], labels[:max_length]
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels}


def prm_dataset(rows, tokenizer, max_length):
    tokenized = [prm_tokenize(r, tokenizer, max_length) for r in rows]
    # A row whose every separator fell past max_length has nothing to learn (TRL's trainers drop those too).
    kept = [t for t in tokenized if any(x != -100 for x in t["labels"])]
    return Dataset.from_list(kept) if kept else None


def kto_subset(rows, n):
    """At most n rows, in file order, holding both labels in their share of the rows (at least one each)."""
    if len(rows) <= n:
        return rows
    good = [i for i, r in enumerate(rows) if r["label"]]
    bad = [i for i, r in enumerate(rows) if not r["label"]]
    n_bad = min(len(bad), max(1, round(n * len(bad) / len(rows))))
    keep = set(bad[:n_bad]) | set(good[: n - n_bad])
    return [r for i, r in enumerate(rows) if i in keep]


def kto_label_counts(rows):
    n_true = sum(1 for r in rows if r["label"])
    return {"desirable": n_true, "undesirable": len(rows) - n_true}


def run_view(view, by_split, tokenizer, args, work):
    started = time.monotonic()
    is_pref = view == PREF_VIEW
    is_kto = view in KTO_VIEWS
    is_prm = view == PRM_VIEW
    train_rows = by_split["train"]
    prompt_completion = bool(train_rows) and "completion" in train_rows[0]
    if is_pref:
        columns = ["prompt", "chosen", "rejected", "tools"]
    elif is_kto:
        columns = ["prompt", "completion", "label", "tools"]
    elif prompt_completion:
        columns = ["prompt", "completion", "tools"]
    else:
        columns = ["messages", "tools"]
    held_out = (by_split["validation"] + by_split["test"])[: args.max_eval_rows]
    extra = {}
    if is_kto:
        counts = kto_label_counts(train_rows)
        if not counts["desirable"] or not counts["undesirable"]:
            only = "desirable (label=true)" if counts["desirable"] else "undesirable (label=false)"
            raise CheckFailed(f"{view}: every train row is {only} ({len(train_rows)} rows): KTO needs both "
                              f"labels in {args.dataset_dir}/train/{view}.jsonl")
        extra["labels"] = counts
        # KTO's loss falls on rows seen more than once, not on fresh ones for every view: the KL term (the
        # policy's log-ratio on mismatched prompt/completion pairs of the batch) cancels what the model
        # learns about completions in general; a batch of desirable rows only stays at 0.5. Measured on
        # worker_kto of a 120-task demo (263 train rows, 40 steps of 4, each row seen once): loss 0.500 ->
        # 0.497. So KTO trains on at most --kto-max-rows rows, and at least two passes over them.
        train_rows = kto_subset(train_rows, min(args.kto_max_rows, (args.steps // 2) * args.batch_size))
    out_dir = work / view
    kw = common_args(out_dir, args, len(train_rows))
    if is_prm:
        max_length = kw.pop("max_length")
        train_ds = prm_dataset(train_rows, tokenizer, max_length)
        if train_ds is None:
            raise CheckFailed(f"{view}: no training example left after tokenization/truncation")
        eval_ds = prm_dataset(held_out, tokenizer, max_length) if held_out else None
        model = build_model(tokenizer, args.seed, args.max_length, cls=LlamaForTokenClassification, num_labels=2)
        # More rows per batch than the other views: a row holds 1-3 labelled positions, and a batch of 4
        # rows made the logged loss too noisy to tell falling from not.
        kw["per_device_train_batch_size"] = min(args.prm_batch_size, len(train_rows))
        config = TrainingArguments(learning_rate=args.prm_lr, **kw)
        trainer = Trainer(model=model, args=config, train_dataset=train_ds, eval_dataset=eval_ds,
                          processing_class=tokenizer,
                          data_collator=DataCollatorForTokenClassification(tokenizer, label_pad_token_id=-100))
        n_steps = [sum(1 for x in t if x != -100) for t in train_ds["labels"]]
        good = sum(sum(1 for x in t if x == 1) for t in train_ds["labels"])
        extra["labels"] = {"good_steps": good, "bad_steps": sum(n_steps) - good}
    else:
        train_ds = to_dataset(train_rows, columns)
        eval_ds = to_dataset(held_out, columns) if held_out else None
        model = build_model(tokenizer, args.seed, args.max_length)
    if is_pref or is_kto:
        ref_model = copy.deepcopy(model)  # built from a config: no hub name to load a reference from
        if is_pref:
            # keep_start (the default): TRL drops a pair whose prompt alone fills max_length.
            config = DPOConfig(learning_rate=args.dpo_lr, beta=args.beta, **kw)
            trainer = DPOTrainer(model=model, ref_model=ref_model, args=config, train_dataset=train_ds,
                                 eval_dataset=eval_ds, processing_class=tokenizer)
        else:
            # Sequential sampling (KTOConfig's default): the KL term pairs each prompt with its neighbour's
            # completion in a fixed-order batch. TRL drops a row whose prompt alone fills max_length.
            config = KTOConfig(learning_rate=args.kto_lr, beta=args.beta, **kw)
            trainer = KTOTrainer(model=model, ref_model=ref_model, args=config, train_dataset=train_ds,
                                 eval_dataset=eval_ds, processing_class=tokenizer)
    elif not is_prm:
        # keep_end: a long conversation loses its oldest turns, not the assistant turn it ends with.
        # Prompt-completion rows: the completion alone is learned (TRL's completion_only_loss).
        config = SFTConfig(learning_rate=args.lr, assistant_only_loss=not prompt_completion,
                           completion_only_loss=True if prompt_completion else None, packing=False,
                           truncation_mode="keep_end", **kw)
        trainer = SFTTrainer(model=model, args=config, train_dataset=train_ds, eval_dataset=eval_ds,
                             processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)  # one dict per step on stdout; the summary says enough
    prepared = trainer.train_dataset
    if is_pref:
        tokens = [len(p) + max(len(c), len(r))
                  for p, c, r in zip(prepared["prompt_ids"], prepared["chosen_ids"], prepared["rejected_ids"])]
        loss_tokens = None
    elif is_kto:
        tokens = [len(p) + len(c) for p, c in zip(prepared["prompt_ids"], prepared["completion_ids"])]
        loss_tokens = None
        extra["labels_trained"] = kto_label_counts([{"label": x} for x in prepared["label"]])
        if not all(extra["labels_trained"].values()):
            raise CheckFailed(f"{view}: after tokenization/truncation the train split holds one label only: "
                              f"{extra['labels_trained']}")
    else:
        # PRM: the labelled positions are the step separators, one per step kept.
        tokens = [len(x) for x in prepared["input_ids"]]
        loss_tokens = sum(sum(1 for t in labels if t != -100) for labels in prepared["labels"])
    trained = len(prepared)
    if trained == 0:
        raise CheckFailed(f"{view}: no training example left after tokenization/truncation")
    trainer.train()
    losses = logged_losses(trainer)
    # KTO samples sequentially (its KL pairs are made within fixed batches): each pass has the same batches.
    epoch = math.ceil(trained / config.per_device_train_batch_size) if is_kto else None
    first_mean, last_mean = check_losses(view, losses, args.steps, args.window, epoch=epoch)
    eval_loss = None
    if eval_ds is not None and len(trainer.eval_dataset) > 0:
        metrics = trainer.evaluate()
        eval_loss = metrics.get("eval_loss")
        if eval_loss is None or not math.isfinite(eval_loss):
            raise CheckFailed(f"{view}: eval loss not finite: {metrics}")
    summary = {
        "view": view,
        "trainer": "dpo" if is_pref else "kto" if is_kto else "prm_token_classification" if is_prm else "sft",
        "rows": {"train": len(by_split["train"]), "held_out": len(held_out), "trained": trained},
        "steps": trainer.state.global_step,
        "first_loss": round(losses[0], 4),
        "last_loss": round(losses[-1], 4),
        "first_mean": round(first_mean, 4),  # KTO: over the first pass; else the first --window losses
        "last_mean": round(last_mean, 4),
        "eval_loss": None if eval_loss is None else round(eval_loss, 4),
        "max_tokens": max(tokens) if tokens else 0,
        "tokens": sum(tokens),
        "loss_tokens": loss_tokens,
        **extra,
        "seconds": round(time.monotonic() - started, 1),
    }
    if trainer.state.global_step != args.steps:
        raise CheckFailed(f"{view}: trained {trainer.state.global_step} steps, want {args.steps}")
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dataset_dir", type=pathlib.Path)
    p.add_argument("--views", default=",".join(ALL_VIEWS), help="comma-separated views (default: all eight)")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-3, help="SFT learning rate")
    p.add_argument("--dpo-lr", type=float, default=1e-3)
    p.add_argument("--kto-lr", type=float, default=1e-3)
    p.add_argument("--kto-max-rows", type=int, default=48,
                   help="KTO trains on at most this many train rows (both labels kept), so each is seen a few times")
    p.add_argument("--beta", type=float, default=0.1, help="DPO and KTO beta")
    p.add_argument("--prm-lr", type=float, default=1e-3, help="learning rate of the stepwise (PRM) classifier")
    p.add_argument("--prm-batch-size", type=int, default=16, help="batch size of the stepwise (PRM) classifier")
    p.add_argument("--max-length", type=int, default=2048)
    p.add_argument("--vocab-size", type=int, default=2048)
    p.add_argument("--window", type=int, default=5, help="losses averaged at each end for the falling check")
    p.add_argument("--max-eval-rows", type=int, default=64, help="held-out rows evaluated after training")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = p.parse_args(argv)

    if not (args.dataset_dir / "train").is_dir():
        log(f"FAIL usage: {args.dataset_dir} has no train/ directory (want the --out of `traj build`)")
        return 2
    views = [v for v in args.views.split(",") if v]
    unknown = [v for v in views if v not in ALL_VIEWS]
    if unknown:
        log(f"FAIL usage: unknown view(s) {unknown}")
        return 2
    if args.steps < 2 * args.window:
        log(f"FAIL usage: --steps must be at least 2 * --window ({2 * args.window})")
        return 2

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    log(f"trl_train_check: torch {torch.__version__} transformers {transformers.__version__} trl {trl.__version__} "
        f"datasets {datasets.__version__}, {args.dataset_dir}")

    failures = []
    loaded, corpus_rows = {}, []
    for view in views:
        try:
            by_split, raw = load_view(args.dataset_dir, view)
        except CheckFailed as e:
            failures.append(f"{view}: {e}")
            continue
        corpus_rows.extend(raw)
        if not by_split["train"]:
            if view in OPTIONAL_VIEWS:
                log(f"skip {view}: no training rows")
                print(json.dumps({"view": view, "skipped": "no training rows"}), flush=True)
                continue
            failures.append(f"{view}: {args.dataset_dir}/train/{view}.jsonl has no rows")
            continue
        loaded[view] = by_split

    tokenizer = None
    if loaded:
        t0 = time.monotonic()
        tokenizer = build_tokenizer(corpus_of(corpus_rows), args.vocab_size)
        try:
            check_template(tokenizer)
        except CheckFailed as e:
            failures.append(str(e))
            loaded = {}
        log(f"tokenizer: byte-level BPE, {len(tokenizer)} tokens, trained on {len(corpus_rows)} rows "
            f"in {time.monotonic() - t0:.1f} s")

    with tempfile.TemporaryDirectory(prefix="traj-trl-") as work:
        for view, by_split in loaded.items():
            log(f"== {view}: {len(by_split['train'])} train rows, "
                f"{len(by_split['validation']) + len(by_split['test'])} held out")
            try:
                # The trainers print their log dicts on stdout; stdout is for the summary lines only.
                with contextlib.redirect_stdout(sys.stderr):
                    summary = run_view(view, by_split, tokenizer, args, pathlib.Path(work))
            except CheckFailed as e:
                failures.append(str(e))
                continue
            except Exception as e:  # a trainer error is a failure of this view, not a crash of the check
                traceback.print_exc()
                failures.append(f"{view}: {type(e).__name__}: {e}")
                continue
            print(json.dumps(summary), flush=True)

    for f in failures:
        log(f"FAIL {f}")
    if failures:
        log(f"trl_train_check: {len(failures)} failure(s)")
        return 1
    log("trl_train_check: all views trained, losses finite and falling")
    return 0


if __name__ == "__main__":
    sys.exit(main())
