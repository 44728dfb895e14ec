"""The merge core: one path from a recipe to tensors, used by every command.

    schema.py      the recipe's keys as frozen pydantic models
    recipe.py      load_recipe: YAML -> Recipe, every problem reported at once
    validate.py    parameter ranges and recipe warnings, before any tensor is read
    params.py      a parameter's value at (tensor, layer): number | gradient | filter list
    layers.py      tensor name <-> layer index; renumbering for slices
    dtypes.py      dtype names and the working dtype
    units.py       which inputs make each output tensor (the models and slices forms)
    plan.py        Recipe + readers -> Plan (one TensorJob per output tensor, all checks done)
    peak.py        the memory a plan needs, and how far reads may run ahead
    execute.py     the streaming loop: read, merge, check, write, one job at a time
    nonfinite.py   NaN/Inf in outputs and the inputs that carried them
    merge.py       merge(recipe, out) = plan -> execute -> config, tokenizer, card, lineage
    stages.py      several recipes in one file: parsed, checked, ordered, planned
    multistage.py  running them in order, intermediates written and reused
    lora_merge.py  a base model plus a LoRA adapter, as one merge
"""
