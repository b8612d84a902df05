# configs/beit/mim_vit-b.py with beitlab's own tokenizer instead of DALL-E's: the 8192-code
# dVAE of configs/dvae/dvae_8192-112px_imagenet.py (the same tokenizer arguments; tests check
# it). On the 112 px tokenizer view, in [0, 1] like the DALL-E encoder's input, its 8x
# downsampling gives 14 x 14 tokens, the patch grid of the 224 px ViT-B/16. Make the weights:
#   python tools/train.py configs/dvae/dvae_8192-112px_imagenet.py
#   python tools/model_converters/extract_tokenizer.py \
#       work_dirs/dvae_8192-112px_imagenet/iter_200000.pth \
#       checkpoints/dvae_8192-112px_imagenet.pth --config configs/dvae/dvae_8192-112px_imagenet.py
_base_ = ['./mim_vit-b.py']

tokenizer = dict(type='DVAE', vocab_size=8192, downsample=8, in_channels=3,
                 hidden_channels=256, embed_dim=256, num_res_blocks=2, beta=0.25,
                 quantizer=dict(ema_decay=0.99, restart_unused_after=200))
model = dict(
    target_generator=dict(
        _delete_=True, type='VisualTokenTarget', tokenizer=tokenizer,
        checkpoint='checkpoints/dvae_8192-112px_imagenet.pth'),
    head=dict(vocab_size=8192))
