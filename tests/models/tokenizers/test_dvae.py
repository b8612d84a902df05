"""DVAE tokenizer: learns on real photos, frozen checkpoint use, grid and vocab checks."""
import numpy as np
import pytest
import torch
from skimage import data as skdata

from beitlab.models.tokenizers.dvae import DVAE
from beitlab.models.tokenizers.utils import check_token_grid, check_vocab_size
from beitlab.registry import TOKENIZERS
from beitlab.utils import register_all_modules


def _small_photos() -> list:
    """Real skimage photos, 4x area-downsampled so a crop holds object structure."""
    photos = []
    for img in (skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket()):
        h, w = img.shape[0] // 4, img.shape[1] // 4
        photos.append(img[:h * 4, :w * 4].reshape(h, 4, w, 4, 3).mean((1, 3)))
    return photos


def photo_crops(num: int, size: int, seed: int) -> torch.Tensor:
    """Random ``size`` px crops of real photos, [num, 3, size, size] in [0, 1]."""
    rng = np.random.default_rng(seed)
    photos = _small_photos()
    crops = []
    for _ in range(num):
        img = photos[rng.integers(len(photos))]
        y = rng.integers(img.shape[0] - size)
        x = rng.integers(img.shape[1] - size)
        crops.append(img[y:y + size, x:x + size])
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255


def test_tiny_dvae_learns_on_real_photos():
    torch.manual_seed(0)
    model = DVAE(vocab_size=32, downsample=4, hidden_channels=16, embed_dim=8,
                 quantizer=dict(restart_unused_after=20))
    train, held_out = photo_crops(512, 16, seed=0), photo_crops(64, 16, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def held_out_stats():
        model.eval()
        with torch.no_grad():
            out = model.loss(held_out)
        model.train()
        return out

    before = held_out_stats()
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        batch = train[torch.randint(0, len(train), (16,), generator=g)]
        losses = model.loss(batch)
        loss = sum(v for k, v in losses.items() if k.startswith('loss'))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = held_out_stats()
    assert after['mse'] < 0.4 * before['mse'], (before['mse'], after['mse'])
    assert after['psnr'] > before['psnr'] + 4
    assert after['usage'] >= 0.25, after['usage']  # restarts keep the codebook in use
    tokens = model.get_tokens(held_out)
    assert tokens.shape == (64, 4, 4) and tokens.dtype == torch.int64
    assert int(tokens.max()) < 32


def test_loss_terms_and_logged_statistics():
    model = DVAE(vocab_size=16, hidden_channels=8, embed_dim=4)
    img = torch.rand(2, 3, 8, 8)
    out = model.loss(img)
    assert set(out) == {'loss_recon', 'loss_codebook', 'loss_commitment', 'mse', 'psnr',
                        'usage', 'perplexity'}
    recon = model(img)['recon']
    torch.testing.assert_close(out['loss_recon'], ((recon - img) ** 2).mean())
    torch.testing.assert_close(out['psnr'], 10 * torch.log10(1 / out['mse']))
    # commitment = beta * codebook term in value (same distance, different stop-gradient)
    torch.testing.assert_close(out['loss_commitment'], 0.25 * out['loss_codebook'])


def test_frozen_from_checkpoint(tmp_path):
    register_all_modules()
    torch.manual_seed(0)
    trained = DVAE(vocab_size=16, hidden_channels=8, embed_dim=4)
    path = tmp_path / 'dvae.pth'
    # a TokenizerTrainer checkpoint: keys under 'tokenizer.'
    torch.save({'state_dict': {f'tokenizer.{k}': v for k, v in trained.state_dict().items()},
                'meta': {'note': 'test'}}, path)
    frozen = TOKENIZERS.build(dict(type='DVAE', vocab_size=16, hidden_channels=8,
                                   embed_dim=4, checkpoint=str(path), bf16=True))
    assert frozen.frozen and frozen.vocab_size == 16 and frozen.downsample == 4
    frozen.train()
    assert not frozen.training
    assert all(not p.requires_grad for p in frozen.parameters())
    img = torch.rand(3, 3, 16, 16)
    tokens = frozen.get_tokens(img, expected_grid=(4, 4))
    assert tokens.shape == (3, 4, 4) and not tokens.requires_grad
    frozen.bf16 = False
    assert torch.equal(frozen.get_tokens(img), trained.eval().get_tokens(img))


def test_vocab_mismatch_checkpoint_names_shapes(tmp_path):
    path = tmp_path / 'dvae16.pth'
    torch.save(DVAE(vocab_size=16, hidden_channels=8, embed_dim=4).state_dict(), path)
    with pytest.raises(ValueError, match=r"vocab_size=32.*quantizer.embedding.weight.*16, 4"):
        DVAE(vocab_size=32, hidden_channels=8, embed_dim=4, checkpoint=str(path))
    with pytest.raises(ValueError, match='vocabulary of 512 codes but the MIM head predicts 8192'):
        check_vocab_size(512, 8192)
    check_vocab_size(8192, 8192)


def test_missing_checkpoint_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothere.pth'):
        DVAE(vocab_size=16, checkpoint=str(tmp_path / 'nothere.pth'))


def test_grid_mismatch_gives_both_grids():
    model = DVAE(vocab_size=16, hidden_channels=8, embed_dim=4, downsample=4)
    with pytest.raises(ValueError, match=r'token grid \(8, 8\) does not match the ViT patch '
                                         r'grid \(14, 14\)'):
        model.get_tokens(torch.rand(1, 3, 32, 32), expected_grid=(14, 14))
    check_token_grid((14, 14), [14, 14])
    with pytest.raises(ValueError, match='multiples of 4'):
        model.get_tokens(torch.rand(1, 3, 30, 32))
