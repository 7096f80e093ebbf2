"""Fine-tuning on good trajectories: ``sara train export | sft | merge | job``.

Training belongs with the model it produces (beside the model server) and is an optional extra
(``pip install -e '.[train]'``): torch, transformers, peft and trl are imported inside
:mod:`sara.train.sft` and :mod:`sara.train.merge` only, so the default install carries none of
them. :mod:`export`, :mod:`config` and :mod:`job` are pure.
"""
