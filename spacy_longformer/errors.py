"""Error messages, spaCy style: each names what was found, what was expected and the fix.

Messages are format strings under a code (``Errors.LF001``); the code appears in the text so a user
can search for it. This module imports nothing of ours, so every floor can use it.

Code ranges: LF001-LF049 model inputs and config, LF050-LF079 checkpoints, LF080-LF099
tokenization, LF100+ command line and workflows. Warnings (logged, not raised) have codes of their
own, ``LFW001`` and up, in ``Warnings``.
"""


class _ErrorsWithCodes(type):
    def __getattribute__(cls, code: str) -> str:
        msg = super().__getattribute__(code)
        if code.startswith("__"):
            return msg
        return f"[{code}] {msg}"


class Errors(metaclass=_ErrorsWithCodes):
    # Config (LF001-LF019)
    LF001 = (
        "Invalid Longformer config: `attention_window` must be an int or a list with one int per "
        'layer, got {value!r}. Set it in config.json, e.g. `"attention_window": 512`.'
    )
    LF002 = (
        "Invalid Longformer config: `attention_window` has {n_windows} entries but the model has "
        "{n_layers} layers (`num_hidden_layers`). Give one window per layer, or a single int."
    )
    LF003 = (
        "Invalid Longformer config: the attention window of layer {layer} is {window}; windows must "
        "be even and >= 2 (the window spans `window / 2` tokens on each side). Use e.g. {suggestion}."
    )
    LF004 = (
        "Invalid Longformer config: `hidden_size` ({hidden_size}) is not divisible by "
        "`num_attention_heads` ({num_heads}). Choose a head count that divides the hidden size."
    )
    LF005 = "Invalid Longformer config: `{key}` must be {expected}, got {value!r}. Fix it in config.json."
    LF006 = "Invalid Longformer config: `hidden_act` {value!r} is not supported. Use one of: {options}."
    LF007 = (
        "Invalid Longformer config: `{key}` is {value}, but must be below `vocab_size` "
        "({vocab_size}). Fix the special token ids in config.json."
    )
    LF008 = (
        "Invalid Longformer config: `max_position_embeddings` ({max_positions}) leaves no room for "
        "tokens: RoBERTa-style positions start after `pad_token_id` ({pad}), so it must be at least "
        "{minimum}."
    )
    LF009 = (
        "Invalid Longformer config: `id2label` has {n_labels} labels but `num_labels` is "
        "{num_labels}. Give one label per class, or drop `num_labels`."
    )
    LF010 = "Can't read Longformer config {path}: {error}. Check that it is a valid JSON object."
    LF011 = (
        "Not a Longformer config: {path} has `model_type` {model_type!r}. Convert a RoBERTa "
        "checkpoint with `python -m spacy_longformer convert-roberta`, or point to a Longformer "
        "checkpoint folder."
    )
    # Checkpoints (LF050-LF079)
    LF050 = (
        "Can't load a Longformer checkpoint from {path}: {problem}. Point to a folder that holds "
        "config.json and model.safetensors (as written by `save_pretrained`)."
    )
    LF051 = (
        "Found no weights in {path}: looked for {looked_for}. Save the model with "
        "`save_pretrained`, or copy the checkpoint's weight files into the folder."
    )
    LF052 = (
        "{path} holds only pickle weights ({file}); pickle files can run code when loaded, so they "
        "are not read by default. If you trust the file, pass `allow_pickle=True` (it is then read "
        "with `torch.load(weights_only=True)`), or convert it once with "
        "`LongformerModel.from_pretrained(path, allow_pickle=True).save_pretrained(new_path)`."
    )
    LF053 = (
        "Can't read weights file {file}: {error}. The file is truncated or corrupt (an interrupted "
        "download or copy?): fetch or save the checkpoint again."
    )
    LF054 = (
        "The shard index {index} lists {shard}, which is not in the folder. Copy every "
        "model-*-of-*.safetensors file of the checkpoint, or save it again."
    )
    LF055 = (
        "Checkpoint {path} does not fit its config: {details}. The weights were saved for another "
        "configuration; use the config.json that came with these weights (check `vocab_size`, "
        "`hidden_size`, `intermediate_size`, `max_position_embeddings`, `type_vocab_size` and the "
        "number of labels)."
    )
    LF056 = (
        "Checkpoint {path} lacks encoder weights the model needs: {keys}{more}. It is incomplete or "
        "not a Longformer checkpoint; save it again with all its shard files."
    )
    LF057 = (
        "Checkpoint {path} has weights we don't know: {keys}{more}. It is not a Longformer "
        "checkpoint of a supported kind (base model, MaskedLM, SequenceClassification, "
        "TokenClassification, QuestionAnswering, MultipleChoice)."
    )
    LF058 = "Can't parse the shard index {index}: {error}. Save the checkpoint again."
    LF059 = '`max_shard_size` must be a positive number of bytes or a string like "200MB", got {value!r}.'
    LF060 = (
        "The checkpoint {path} holds encoder weights its config.json has no place for: {keys}. The "
        "config says `num_hidden_layers` = {n_layers}; make config.json match the weights (or use the "
        "config that was saved with them)."
    )
    # Model inputs (LF020-LF049)
    LF020 = (
        "Input of {length} tokens is longer than the position table allows: "
        "`max_position_embeddings` is {max_positions} and positions start after `pad_token_id` "
        "({pad}), so at most {limit} tokens fit. Split the document into windows of at most "
        "{limit} tokens (the spaCy pipe does this for you)."
    )
    LF021 = (
        "Token id {token_id} at position {position} is outside the vocabulary of {vocab_size} "
        "ids. Use the tokenizer that belongs to this checkpoint."
    )
    LF022 = "Give either `input_ids` or `inputs_embeds`, not both."
    LF023 = "Give `input_ids` or `inputs_embeds`: the model received neither."
    LF024 = (
        "`{name}` has shape {shape}, expected {expected}. All inputs must be (batch, sequence) "
        "like `input_ids`."
    )
    LF025 = (
        "`inputs_embeds` has shape {shape}, expected (batch, sequence, {hidden_size}) for this "
        "model's `hidden_size`."
    )
    LF026 = (
        "`head_mask` has shape {shape}, expected ({n_layers}, {n_heads}) (layers, heads) or "
        "({n_heads},) for all layers."
    )
    LF027 = (
        "Position id {position_id} is outside the position table of {max_positions} entries. "
        "Let the model compute positions (omit `position_ids`) or shorten the input."
    )
    LF028 = (
        "Can't compute the default global attention of {head}: row {row} of `input_ids` has no "
        "`</s>` (sep_token_id {sep}). Encode the input as a (question, context) pair or pass "
        "`global_attention_mask` yourself."
    )
    LF030 = "Unknown attention implementation {value!r}. Use one of: {options}."
    LF031 = "`labels` has shape {shape}, expected {expected} for {head}."
    LF032 = "Multiple-choice inputs must be (batch, choices, sequence); `{name}` has shape {shape}."
    LF033 = (
        "Token type id {value} is outside the table of {type_vocab_size} types "
        "(`type_vocab_size`). Longformer checkpoints use 0 everywhere: omit `token_type_ids`."
    )
    LF034 = (
        "`attention_mask` holds {value!r} at {position}; it takes 0 (padding), 1 (a token) or 2 (a "
        "token with global attention, transformers' old convention). Pass 0/1, and 1 in "
        "`global_attention_mask` for global tokens."
    )
    LF035 = (
        "`input_ids` are {dtype}, but they are token ids: pass an integer tensor (`torch.long`), e.g. "
        "`torch.tensor(encoding.ids)`."
    )
    LF036 = (
        "`{name}` has shape {shape}: rows without a single token can't be encoded. Give each row at "
        "least `<s></s>` (what the tokenizer makes of an empty text)."
    )
    LF037 = (
        "{head} got label {value}, but there are {n_classes} classes (ids 0 to {last}; -100 takes no "
        "loss). Map the labels to the classes of config.json's `id2label`, or set "
        "`num_labels`."
    )
    # Tokenization (LF080-LF099)
    LF080 = (
        "Can't load a Longformer tokenizer from {path}: no such folder. Point to a checkpoint folder "
        "holding `tokenizer.json` (or `vocab.json` and `merges.txt`), e.g. one written by "
        "`LongformerTokenizer.save_pretrained`."
    )
    LF081 = (
        "Can't find a tokenizer in {path}: looked for {looked_for}, found {found}. Copy the "
        "checkpoint's `tokenizer.json` (or both `vocab.json` and `merges.txt`) into the folder, or "
        "write them with `LongformerTokenizer.save_pretrained`."
    )
    LF082 = (
        "Can't read the tokenizer file {path}: {error}. Replace it with an intact copy from the "
        "checkpoint, or delete it to load `vocab.json` and `merges.txt` instead."
    )
    LF083 = (
        "Can't read the tokenizer file {path}: {error}. Replace it with an intact copy from the "
        "checkpoint, or write the tokenizer again with `LongformerTokenizer.save_pretrained`."
    )
    LF084 = (
        "Invalid token {value!r} for `{key}` in {source}: expected a string or an object with a "
        'string "content", e.g. {{"content": "<mask>", "lstrip": true}}. Fix the entry, or '
        "write the tokenizer again with `LongformerTokenizer.save_pretrained`."
    )
    LF085 = (
        "Can't train a byte-level BPE with `vocab_size` {vocab_size}: the 256-byte alphabet and the "
        "{n_special} special tokens alone need {minimum} ids. Use `vocab_size` >= {minimum}."
    )
    LF086 = (
        "Can't restore a LongformerTokenizer from bytes: {error}. Pass the bytes that "
        "`LongformerTokenizer.to_bytes()` returned, unchanged."
    )
    LF087 = (
        "Token id {token_id} at position {position} is outside the tokenizer's vocabulary of "
        "{vocab_size} ids. Decode ids made by this tokenizer (or by the model that belongs to it)."
    )
    LF088 = (
        "The tokenizer takes text as `str`, got {type_name} ({value!r:.60}). Pass the document's "
        "text, e.g. `doc.text`."
    )
    # Converting a RoBERTa checkpoint (LF100-LF109)
    LF100 = (
        "Can't convert {path}: {problem}. Point `convert-roberta` to a RoBERTa checkpoint folder "
        "holding config.json and model.safetensors (as `RobertaModel.save_pretrained` writes it)."
    )
    LF101 = "Can't convert {path}: its config.json has `model_type` {model_type!r}, not 'roberta'; {hint}."
    LF102 = (
        "`max_length` must be a positive int (the longest input of the new model, in pieces, e.g. "
        "4096), got {value!r}."
    )
    LF103 = (
        "`attention_window` must be an even int >= 2, or a list of one per layer ({n_layers} layers), "
        "got {value!r}. Each token sees `window / 2` pieces on either side; the paper used 512."
    )
    LF104 = (
        "Can't write the Longformer checkpoint to {path}: {found}. Pick a new or empty folder, or pass "
        "`--force` (`force=True`) to delete what it holds first."
    )
    LF105 = (
        "The output folder {dst} is the RoBERTa checkpoint {src} or a folder holding it; writing "
        "there would destroy the source. Pick an output folder outside it."
    )
    LF106 = (
        "The RoBERTa checkpoint {path} lacks weights a {architecture} needs: {keys}{more}. It is "
        "incomplete (a shard missing?) or not the architecture config.json names; save it again "
        "with `save_pretrained`, or fix `architectures` in config.json."
    )
    LF107 = (
        "The RoBERTa checkpoint {path} has weights that don't fit a {architecture}: {details}. Use "
        "the config.json that came with these weights (check `architectures`, `vocab_size`, "
        "`hidden_size`, `num_hidden_layers`, `intermediate_size`, `type_vocab_size`)."
    )
    LF108 = "Can't convert {path}: it has {what}. Supported: {options}."
    LF109 = (
        "Can't read the tokenizer settings {path}: {error}. Replace the file with an intact copy "
        "from the checkpoint, or delete it (the converted folder then gets a new one)."
    )
    # Training data (LF110-LF119)
    LF110 = (
        "Can't read the data file {path}: {problem}. Check the path (give the file itself, not its folder)."
    )
    LF111 = (
        "Line {line} of {path} is not valid JSON ({error}): {snippet!r}. Each line of a JSONL file "
        "must hold one complete JSON object; fix or remove the line."
    )
    LF112 = (
        "Line {line} of {path} is not a text-classification record: {problem}. Each line needs a "
        'string "text" and a "cats" object of label -> score, e.g. {example}.'
    )
    LF113 = (
        'Line {line} of {path}: the score of category {label!r} in "cats" is {value!r}; scores must '
        "be numbers from 0 to 1 (1.0 where the label applies, 0.0 where it doesn't). Fix the value."
    )
    LF114 = (
        "Can't read {path} as SQuAD data: {problem}. Give the official layout "
        '{{"data": [{{"paragraphs": [{{"context": ..., "qas": [...]}}]}}]}}, or a JSON list (or JSONL '
        'file) of {{"question": ..., "context": ..., "answers": {{"text": [...], "answer_start": '
        "[...]}}}} records."
    )
    LF115 = (
        "QA pair {which} in {path} is invalid: {problem}. Each pair needs a non-empty string "
        '"question", a string "context" and "answers", as a list of {{"text": ..., "answer_start": '
        '...}} or as {{"text": [...], "answer_start": [...]}}.'
    )
    LF116 = (
        "The answer of QA pair {which} in {path} does not match its context: the answer text is "
        "{text!r}, but the context at `answer_start` {start} reads {found!r} ({hint}). Fix "
        "`answer_start` (a 0-based character offset into the context) or the answer text."
    )
    LF117 = (
        "The answer {text!r} of QA pair {which} in {path} (at character {start}) covers no token of "
        'the context: it is empty or only whitespace. Fix the answer, or give `"answers": []` if '
        "the question has none."
    )
    LF118 = "`{name}` must be an int >= {minimum}, got {value!r}. Ask for at least {minimum}."
    LF119 = "Unknown synthetic task {task!r}. Use one of: {options}."
    # spaCy layers and pipes (LF120-LF159)
    LF120 = (
        "The Longformer encoder has no weights yet: call `nlp.initialize()` (it loads the checkpoint "
        "named by `{setting}`), or load a saved pipeline with `spacy.load`."
    )
    LF121 = (
        "Can't load the Longformer checkpoint {path!r} given as `{setting}`: {error} Set it (with our "
        "configs: `--paths.longformer`) to a folder with config.json, model.safetensors and tokenizer "
        "files."
    )
    LF122 = (
        "The global-attention getter wants sentence starts, but the doc has none set. Add a "
        "`sentencizer` or `parser` before the Longformer component, or set `sentence_starts = false`."
    )
    LF123 = "`{name}` must be {expected}, got {value!r}. Fix it in the encoder's config block."
    LF124 = (
        "The global-attention getter returned token index {index} for a doc of {n_tokens} tokens. A "
        "getter must return indices of the doc's tokens (0 <= i < len(doc))."
    )
    LF125 = (
        "Saved Longformer pipe data in {path} is incomplete: {missing} is missing. Save the pipeline "
        "again with `nlp.to_disk`."
    )
    LF126 = (
        "The Longformer listener of `{component}` received no output for this batch from its upstream "
        "component `{upstream}`. Put `{upstream}` before `{component}` in the pipeline and keep it in "
        "`[training] frozen_components` only together with `annotating_components`."
    )
    LF127 = "`make_qa_doc` takes the {what} as `str`, got {type_name}. Pass the text itself."
    LF128 = "`make_qa_doc` got an empty question. A QA doc needs a question to answer."
    LF129 = (
        'A QA doc needs its question as the one span of `doc.spans["{key}"]`, starting at token 0, '
        "and the context after it; found {found}. Build QA docs with "
        "`spacy_longformer.make_qa_doc(nlp, question, context)`, or set "
        '`doc.spans["{key}"] = [doc[0:n_question_tokens]]`.'
    )
    LF130 = (
        "The question has {n_pieces} pieces, which leaves no room for the context in a window of "
        "{window} pieces. Shorten the question, or raise the encoder's `max_window_pieces` (up to "
        "what the checkpoint's position table holds)."
    )
    LF131 = (
        "A Longformer task model's `encoder` must be `spacy-longformer.LongformerEncoder.v1` or "
        "`spacy-longformer.LongformerListener.v1`, got a `{name}` layer. Set `@architectures` of the "
        "component's `[model.encoder]` block to one of them."
    )
    LF132 = (
        "The task model `{name}` doesn't know the encoder's width: its listener has no upstream "
        "encoder yet. Put a `longformer_encoder` component before it in the pipeline (and run "
        "`nlp.initialize()`), or give the component an embedded `spacy-longformer.LongformerEncoder.v1`."
    )
    LF133 = (
        "The fine-tuned head in {path} lacks {keys}. Point the component at the complete checkpoint "
        "folder (as `save_pretrained` wrote it), or at a base checkpoint to start a fresh head."
    )
    LF134 = (
        "The fine-tuned head's `{module}` weights have shape {shape}, but the component's head needs "
        "{expected} (labels x hidden). Use the checkpoint's own labels (its config.json `id2label`) "
        "and the encoder it was fine-tuned with."
    )
    LF135 = (
        "`{name}` has labels {labels}: too few to classify. Give the training data's `doc.cats` at "
        "least two labels (one for a multi-label component), list them in "
        "`[initialize.components.{name}.labels]`, or start from a fine-tuned checkpoint whose "
        "config.json has `id2label`."
    )
    LF136 = (
        "`positive_label` {positive_label!r} needs exactly two labels including it; the component has "
        "{labels}. Fix `[initialize.components.<name>] positive_label`, or leave it null."
    )
    LF137 = (
        "Can't add label {label!r} to `{name}` after its head has weights. Add every label before "
        "`nlp.initialize()` (or list them in `[initialize.components.{name}.labels]`)."
    )
    LF138 = (
        "`{name}` has no entity labels: the examples have no `doc.ents` and none were given. Train on "
        "docs with entities, list labels in `[initialize.components.{name}.labels]`, or start from a "
        "fine-tuned token-classification checkpoint whose config.json has `id2label`."
    )
    LF139 = (
        "A gold entity of `{name}` has label {label!r}, which its head can't predict (labels: "
        "{labels}). Relabel the data, or start from a base checkpoint so labels come from the data."
    )
    LF140 = (
        "`longformer_qa` got encoder output without a question: its encoder read the doc as one text. "
        'Set `question_key = "question"` in the `[model]` block of the encoder it uses (its own, or the '
        "`longformer_encoder` its listener follows)."
    )
    LF141 = (
        "The Longformer encoder has no checkpoint: `{setting}` is empty. Set it to a checkpoint folder "
        "(config.json, model.safetensors, tokenizer files): `--paths.longformer DIR` with our configs, "
        '`config={{"model": {{"name": DIR}}}}` for `longformer_encoder` in `nlp.add_pipe`, or '
        '`config={{"model": {{"encoder": {{"name": DIR}}}}}}` for a task component.'
    )
    LF142 = (
        "`{name}` in this pipeline was saved by spacy-longformer 0.1, whose task heads this version "
        "({version}) stores differently and can't read. Retrain the pipeline with this version "
        "(`spacy train`), or load it with spacy-longformer 0.1 (`pip install 'spacy-longformer<0.2'`)."
    )
    LF143 = (
        "A `spacy-longformer.LongformerListener.v1` with `upstream = {upstream!r}` has no encoder: "
        "{found}. Set `upstream` to the name of a `longformer_encoder` component earlier in the "
        'pipeline (or `"*"` for any), or give the component an encoder of its own.'
    )
    LF144 = "No config template for task {task!r}. Use one of: {options}."
    # LF155-LF159: reliability checks of the pipes.
    LF155 = (
        "A gold category of `{name}` is {label!r}, which its head can't predict (labels: {labels}): its "
        "loss would read 0 while it trains on nothing. Relabel the data, or add the label before "
        "`nlp.initialize()` (`[initialize.components.{name}.labels]`, or train from a base checkpoint so "
        "labels come from the data)."
    )
    # The masked LM: fill-mask, continued pretraining, attention maps (LF160-LF179)
    LF160 = (
        "`fill_mask` got {problem}. Give a checkpoint folder alone (its tokenizer is read from it), "
        "or a loaded `LongformerForMaskedLM` with `tokenizer=` its `LongformerTokenizer`."
    )
    LF161 = (
        "`fill_mask` takes a checkpoint folder or a `LongformerForMaskedLM`, got {type_name}. Pass the "
        "folder, or load it with `LongformerForMaskedLM.from_pretrained(path)`."
    )
    LF162 = (
        "The text has no mask token {mask!r}, so there is nothing to fill (text: {text!r:.80}). Put "
        "{mask} where the word to predict goes, e.g. 'The lease was {mask} by both parties.'"
    )
    LF163 = (
        "Checkpoint {path} has no masked-LM head (config.json's `architectures`: {architectures}; no "
        "`lm_head` weights), so its predictions would be random. Use a `LongformerForMaskedLM` "
        "checkpoint: one that `python -m spacy_longformer pretrain` wrote, or one that `convert-roberta` "
        "made from a `RobertaForMaskedLM` checkpoint (such as roberta-base)."
    )
    LF164 = "`{name}` must be a number {interval}, got {value!r}. Fix the option."
    LF165 = (
        "Unknown precision {value!r}. Use `auto` (bf16 autocast on a CUDA device that supports it, "
        "float32 elsewhere), `fp32` or `bf16`."
    )
    LF166 = (
        "Can't read the corpus {path}: pretraining reads {suffixes} files. Convert it to JSONL, one "
        '{{"text": ...}} a line, or to a .txt file with one document a line.'
    )
    LF167 = (
        'Line {line} of {path} is not a document: expected an object with a string "text", found '
        '{found}. Give each line as {{"text": "..."}}.'
    )
    LF168 = (
        "The corpus holds {n_docs} non-empty document(s); pretraining needs at least 2, one to train "
        "on and one held out for evaluation. Add documents to the corpus."
    )
    LF169 = (
        "Can't resume: {path} holds no training state (`training-state/state.json`). Run without "
        "`--resume` to start, or point OUTPUT to the folder of the run to continue."
    )
    LF170 = (
        "`max_length` {value} is more than the position table of {path} holds ({limit} pieces). Use "
        "`--max-length {limit}` or less, or convert with a longer `convert-roberta --max-length`."
    )
    LF171 = (
        "Can't resume the run in {path} with other settings, which would not continue it: {changed}. "
        "Pass the options the run started with (its `training-state/state.json` lists them), or "
        "start a new run in another OUTPUT folder."
    )
    LF172 = (
        "OUTPUT {path} is the checkpoint being pretrained; writing there would overwrite it. Pick "
        "another OUTPUT folder."
    )
    LF173 = (
        "Can't pretrain into {path}: {found}. Pick a new or empty folder, pass `--resume` to continue "
        "the run saved there, or `--force` (`force=True`) to delete what it holds first."
    )
    LF174 = (
        "Found no Longformer encoder in {found}. Pass a pipeline with a `longformer_encoder` or a "
        "`longformer_*` task component (after `nlp.initialize()` or `spacy.load`), the component "
        "itself, or its encoder model (`spacy-longformer.LongformerEncoder.v1`)."
    )
    LF175 = (
        "`{name}` {value!r} is out of range: the model has {count} ({name} 0 to {last}, or -1 for the last)."
    )
    LF176 = (
        "Token {value!r} is not a token or a non-empty span of this doc ({n_tokens} tokens). Pass "
        "`doc[i]`, `doc[i:j]`, a token index, or '<s>' for the first window's `<s>`."
    )
    LF177 = (
        "The doc carries no attention map of layer {layer}, head {head}. Compute it first with "
        "`attention_map(nlp, doc, layer={layer}, head={head}, attach=True)`, or pass `nlp=` to "
        "`plot_attention`."
    )
    LF178 = (
        'Plotting attention needs matplotlib: `pip install "spacy-longformer[plot]"` (or `pip install '
        "matplotlib`)."
    )

    # Annotating a corpus on Ray: `annotate` (LF180-LF189)
    LF180 = (
        "`annotate` runs on Ray, which is not installed ({error}). Install it with "
        '`pip install "spacy-longformer[ray]"` (or `pip install "ray[data]"`; with --address, the '
        "Ray version the cluster runs)."
    )
    LF181 = (
        "Can't find the pipeline {pipeline!r}: {problem}. Give the folder that `nlp.to_disk` or "
        "`spacy train` wrote (it holds config.cfg and meta.json), or the name of an installed "
        "pipeline package."
    )
    LF182 = (
        'Can\'t annotate {path}: {problem}. Give a JSONL file (one {{"text": ..., "meta": {{...}}}} '
        "a line), a .txt file (one document), a .spacy file, or a folder of them."
    )
    LF183 = (
        'Can\'t annotate {path}: {found}. Supported: .jsonl (one {{"text": ..., "meta": {{...}}}} '
        "a line), .txt (one document a file) and .spacy (DocBin) files, or a folder holding them "
        "(searched recursively, hidden files skipped)."
    )
    LF184 = (
        "OUTPUT {output} holds shards of another run: its manifest.json was written for {what} "
        "{old!r}, this run has {new!r}. Annotate into a new OUTPUT folder, rerun with the same "
        "input, pipeline and options, or delete {output} to start over."
    )
    LF185 = "Can't write to OUTPUT {output}: {problem}. Choose a new or empty folder, outside INPUT."
    LF186 = "`{option}` must be {expected}, got {value!r}. See `python -m spacy_longformer annotate --help`."
    LF187 = (
        "The Ray actors could not load the pipeline {pipeline}: {error}. Every node must see the "
        "pipeline at this path (or have its package installed) and have spacy-longformer installed; "
        'with --gpus-per-actor, also CuPy (`pip install "spacy[cuda12x]"`).'
    )
    LF188 = (
        "Can't join the Ray cluster at {address!r}: {error}. Start it with `ray start --head` (then "
        "`ray start --address HEAD:6379` on the other nodes), or leave out --address to run on this "
        "machine."
    )
    LF189 = (
        "{where} has {have} {resource}s, but {num_actors} actors of {per_actor} {resource} each need "
        "{need}: the pool would wait for actors forever. Lower --num-actors or {option}."
    )
    # ONNX export (LF190-LF199)
    LF190 = (
        "Can't export a {model}: the export supports {supported}. Export its encoder "
        "(`model.longformer`) instead, or a checkpoint with one of those heads."
    )
    LF191 = (
        "Can't export {path}: it has no config.json. Pass a checkpoint folder (config.json + "
        "weights), e.g. one written by `save_pretrained`."
    )
    LF192 = "int8 quantization needs onnxruntime ({error}). Install it with `pip install onnxruntime`."
    LF193 = (
        'The encoder `{setting}` runs on onnxruntime (`backend = "onnxruntime"`), which has no '
        'backward pass, so it can\'t be trained. Train with `backend = "torch"` and export afterwards '
        "(`python -m spacy_longformer export PIPELINE OUT --format onnx`), or keep the encoder fixed: "
        "list its component in `[training] frozen_components` and `annotating_components`."
    )
    LF194 = (
        '`backend = "onnxruntime"` needs onnxruntime ({error}). Install it with `pip install '
        'onnxruntime` (`onnxruntime-gpu` for CUDA), or set the encoder\'s `backend = "torch"`.'
    )
    LF195 = (
        "Can't load the ONNX graph {path}: {error} Export one with `python -m spacy_longformer export "
        "CHECKPOINT OUT --format onnx` and set the encoder's `onnx_path` to OUT/model.onnx (or leave "
        "it null to export the checkpoint `name` at initialize)."
    )
    LF196 = (
        "The ONNX graph {path} doesn't fit the encoder: {problem} (found {found}). The encoder needs "
        "inputs input_ids, attention_mask, global_attention_mask (int64) and output "
        "last_hidden_state of the checkpoint `name`: export that checkpoint with `python -m "
        "spacy_longformer export CHECKPOINT OUT --format onnx`."
    )
    LF197 = (
        "The encoder `{setting}` runs on onnxruntime and has no torch model, which {what} needs. Use "
        'a pipeline whose encoder has `backend = "torch"` (the one that was exported).'
    )
    LF198 = (
        "{path} holds an ONNX graph (model.onnx) but no torch weights (model.safetensors): the "
        'pipeline was saved with `backend = "onnxruntime"`. Load it with that backend (its '
        "config.cfg has it), or save the pipeline from a torch one to get torch weights."
    )
    LF199 = (
        "`export {option} {value}` is not supported (yet): use {supported}. See `python -m "
        "spacy_longformer export --help`."
    )
    # Encoder precision (LF200-LF209)
    LF200 = (
        "`dtype` = {dtype!r} is for inference only (predict, `nlp.pipe`): training updates float32 "
        'weights. Train with `{setting} dtype = "float32"` (and `mixed_precision = true` for CUDA '
        "autocast: half-precision compute over float32 weights), then serve the saved pipeline with "
        "`dtype` = {dtype!r}: its weights stay float32 on disk, the dtype is read from the config."
    )
    LF201 = (
        "`dtype` = 'float16' on the CPU: this torch ({version}) can't run the encoder in float16 "
        '({error}). On the CPU use `dtype = "bfloat16"`; float16 needs a CUDA GPU.'
    )
    # Export formats and dtypes (LF202-LF208)
    LF202 = (
        "`export --format onnx --dtype bf16` is not supported: onnxruntime's CPU provider has no "
        "bfloat16 kernels for this graph's MatMul, Add and Softmax (onnxruntime 1.32), so a "
        "bf16 graph would not load. For bf16 use `--format torch-export --dtype bf16`; for a "
        "smaller, faster onnxruntime CPU model use `--format onnx --quantize int8`."
    )
    LF203 = (
        "`export --format torch-export --quantize int8` is not supported: int8 is onnxruntime's "
        "dynamic quantization of an ONNX graph (torch's own, `torch.ao.quantization`, is "
        "deprecated and can't be saved with torch.export). Use `--format onnx --quantize int8`, "
        "or `--format torch-export --dtype bf16` for half-size weights."
    )
    LF204 = (
        "Can't export with dtype {dtype}: `export_torch` writes torch.float32 or torch.bfloat16 "
        "weights. Pass one of those (bfloat16 for half-size weights; outputs are float32 either way)."
    )
    LF205 = (
        "{path} has no model.pt2. Export one with `python -m spacy_longformer export CHECKPOINT OUT "
        "--format torch-export` and pass OUT (or OUT/model.pt2)."
    )
    LF206 = (
        "{path} holds an ONNX graph (model.onnx) but no torch weights: its pipeline was saved with "
        '`backend = "onnxruntime"`, and `--format torch-export` exports the torch model. Export the '
        "checkpoint the pipeline was built from (its `name`), or use `--format onnx` to copy the graph."
    )

    LF208 = (
        "`--format torch-export` needs torch >= 2.5 (this is {version}): older torch.export fixes the "
        "sequence axis of this graph. Upgrade torch (`pip install -U torch`), or use `--format onnx`."
    )
    LF207 = (
        "The ONNX graph {path} (`{setting} onnx_path`) holds other weights than the saved encoder "
        "(its `{name}` differs): it was exported from another checkpoint, e.g. the one this "
        "pipeline was fine-tuned from. Export the saved pipeline itself: `python -m "
        "spacy_longformer export PIPELINE OUT --component NAME [--quantize int8]`, and set "
        "`onnx_path` to OUT/model.onnx or OUT/model.int8.onnx."
    )


class Warnings(metaclass=_ErrorsWithCodes):
    LFW001 = (
        "{head} needs `input_ids` to place its default global attention; with `inputs_embeds` "
        "pass `global_attention_mask` yourself. Running without global attention."
    )
    LFW002 = "{head}: initialised fresh (not in checkpoint {path}): {keys}. Train or fine-tune before use."
    LFW003 = (
        "A Longformer listener (upstream {upstream!r}) got docs that no `longformer_encoder` has read, "
        "so its component predicts from zeros. Keep the encoder in the pipeline, enabled and before "
        "the listening component (not in `exclude` or `disable` of `spacy.load`, and sourced "
        "together with it), or give the component its own encoder with `nlp.replace_listeners`."
    )
    # LFW010-LFW019: reliability warnings of the encoder.
    LFW010 = (
        "`max_window_pieces` = {asked} is more than the checkpoint's position table holds in one window "
        "({fits} pieces between <s> and </s>): windows hold {fits}. Set `{setting} max_window_pieces` to "
        "{fits} or less (or null for what fits)."
    )
    LFW011 = (
        "`window_overlap` = {overlap} is not less than a window ({window} pieces): windows overlap by "
        "{used}, half a window, so that each still moves forward. Set `window_overlap` to at most "
        "{used}."
    )
    LFW012 = (
        "`dtype` = {dtype!r} on a CPU without native {dtype} matrix instructions (oneDNN reports none: "
        "no AVX512-BF16/AMX or AVX512-FP16): its matmuls run through slow fallbacks, several times "
        'slower than float32 (about 10x measured on an AVX2 CPU). Use `{setting} dtype = "float32"` '
        'here, or `backend = "onnxruntime"` with an int8 export (`python -m spacy_longformer export '
        "... --quantize int8`) for a faster, smaller CPU model."
    )
