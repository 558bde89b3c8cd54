"""A tiny Qwen3-shaped model whose greedy output is scripted, built offline in a few seconds.

The transformer layers are silenced (``o_proj`` and ``down_proj`` are zero), so the hidden state
at the last position is the embedding of the last token, and ``lm_head`` alone picks the next
token. Each token of a small chain gets an orthogonal embedding and one ``lm_head`` row, so every
token of the chain has exactly one successor:

* after the chat template's generation prompt (``<|im_start|>assistant\\n``, last token ``\\n``)
  the model writes ``<think>``, then an endless loop of one thinking step, ``STEP``, separated by
  blank lines (``\\n\\n``): the segmenter sees a new step every ``STEP_TOKENS + 1`` tokens;
* after tracestop's forcing cue (``...**Final Answer**\\n``, last token ``**\\n``) it writes
  ``ANSWER`` (``\\boxed{5}``) and then ``<|im_end|>``, the end of sequence.

The tokenizer is a byte-level BPE trained on the spot on a few lines, with Qwen2's
pre-tokenizer regex, so that every token of ``STEP`` and ``ANSWER`` is one BPE token and no token
is used twice in the chain. ``build(path)`` checks that; the tests check the rest (what the
server writes) through the server.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from tracestop.templates import TEMPLATES

STEP = "Checking the sum again: two plus three gives five."
ANSWER = "\\boxed{5}"
CUE = TEMPLATES["qwen3"].forcing_suffix("math")  # "\n</think>\n\n**Final Answer**\n"
QUESTION = "What is 2 + 3?"
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
THINK = ["<think>", "</think>"]

#: Qwen2/Qwen3's pre-tokenizer split
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

#: a Qwen3-style template: thinking kept in assistant messages (``reasoning_content`` or inline)
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message.role == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if message.reasoning_content is defined and message.reasoning_content %}"
    "{{- '<think>\\n' + message.reasoning_content + '\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{{- message.content }}"
    "{%- if not (loop.last and continue_final_message is defined and continue_final_message) %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- else %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)


def chat_prompt(question: str = QUESTION) -> str:
    """The text the chat template makes of one user message, with the generation prompt."""
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


def _corpus() -> list[str]:
    lines = [STEP + "\n\n" + STEP, CUE + ANSWER, chat_prompt(), "Tom has 12 apples. Answer: 7."]
    return lines * 50


def build(path: Path) -> dict[str, list[int]]:
    """Write the model and its tokenizer to ``path``; return the token chains (for the tests)."""
    import torch
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        GenerationConfig,
        PreTrainedTokenizerFast,
        Qwen3Config,
        Qwen3ForCausalLM,
    )

    path.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, min_frequency=2, special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        bos_token=None, unk_token=None, model_max_length=8192,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(path))
    # Qwen2's tokenizer class, as the Hub's Qwen3 checkpoints say
    cfg_path = path / "tokenizer_config.json"
    tcfg = json.loads(cfg_path.read_text())
    tcfg["tokenizer_class"] = "Qwen2Tokenizer"
    cfg_path.write_text(json.dumps(tcfg, indent=1))

    def ids(text: str) -> list[int]:
        return list(tok.encode(text, add_special_tokens=False).ids)

    vid = tok.token_to_id
    step_ids = ids(STEP)
    blank = ids("\n\n")
    answer_ids = ids(ANSWER)
    prompt_last = ids(chat_prompt())[-1]
    cue_last = ids(STEP + CUE)[-1]
    assert len(blank) == 1, blank
    # the chain: prompt -> <think> -> \n\n -> STEP -> \n\n -> STEP ...; cue -> ANSWER -> <|im_end|>
    think_loop = [prompt_last, vid("<think>"), blank[0], *step_ids]
    answer_chain = [cue_last, *answer_ids]
    nodes = think_loop + answer_chain
    assert len(set(nodes)) == len(nodes), f"a token is used twice in the chain: {nodes}"
    succ = dict(itertools.pairwise(think_loop))
    succ[step_ids[-1]] = blank[0]
    succ.update(itertools.pairwise(answer_chain))
    succ[answer_ids[-1]] = vid("<|im_end|>")

    vocab = tok.get_vocab_size()
    hidden = 64
    assert len(nodes) <= hidden
    config = Qwen3Config(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=8192,
        tie_word_embeddings=False, bos_token_id=None, eos_token_id=vid("<|im_end|>"),
        pad_token_id=vid("<|endoftext|>"), dtype="float32",
    )
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config).eval()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.norm.weight.fill_(1.0)
        emb = model.model.embed_tokens.weight
        emb.normal_(0.0, 0.02)  # tokens off the chain: small, arbitrary
        head = model.lm_head.weight
        head.zero_()
        for i, t in enumerate(nodes):
            emb[t].zero_()
            emb[t, i] = 1.0  # after the final RMSNorm: 8.0 on dimension i, 0 elsewhere
        for t, s in succ.items():
            head[s, nodes.index(t)] = 5.0  # logit 40 for the successor, 0 for the rest
    model.generation_config = GenerationConfig(
        do_sample=False, eos_token_id=[vid("<|im_end|>"), vid("<|endoftext|>")],
        pad_token_id=vid("<|endoftext|>"), max_new_tokens=1024,
    )
    model.save_pretrained(str(path))
    return {"think_loop": think_loop, "answer_chain": answer_chain, "step": step_ids,
            "answer": answer_ids}
