# configs/beit/mim_vit-b.py with the speed options that docs/performance.md measured
# as faster (same recipe, same architecture; see that page for the figures):
# - bf16 autocast of forward/loss through AutocastOptimWrapper (works on CPUs with
#   AVX512-BF16/AMX and on GPUs; fp32 master weights, no loss scaler needed);
# - the frozen DALL-E tokenizer in bf16 and channels-last (ChannelsLastHook);
# - the fused AdamW kernel (torch >= 2.4 has it on CPU and GPU).
# Opt-in extras, off here because they did not pay on the 2-core CPU measured:
#   dict(type='CompileHook', modules='backbone.blocks'),
#   dict(type='ActivationCheckpointHook', modules=['backbone.blocks'])  # memory, not speed
_base_ = ['../_base_/default_runtime.py', '../_base_/beit_mim_in1k-224.py']

model = dict(
    backbone=dict(arch='base', layer_scale_init_value=0.1),
    target_generator=dict(bf16=True),
    head=dict(in_channels=768))

optim_wrapper = dict(
    type='AutocastOptimWrapper', dtype='bfloat16',
    optimizer=dict(fused=True))

custom_hooks = [dict(type='ChannelsLastHook', modules=['target_generator'])]

# The fast path (beitlab/engine/fast_path.py) adds exact mask counts and BEiT's loss compiled
# as one function to the above: 1.05x the bf16 step on a 2-core Intel Xeon with AMX (batch 8,
# tokenizer inside the step; about a minute of compilation at the start; docs/performance.md).
fast_path = True
