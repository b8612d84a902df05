"""Tokenizers read RGB floats in [0, 1]; a normalised or 0-255 view is refused by name."""
import pytest
import torch

from beitlab.models.tokenizers.dalle_encoder import DALLEEncoder
from beitlab.models.tokenizers.dvae import DVAE


@pytest.mark.parametrize('make', [
    lambda: DALLEEncoder(vocab_size=16, hidden_channels=8, group_count=2, blocks_per_group=1),
    lambda: DVAE(vocab_size=16, downsample=4, hidden_channels=8, embed_dim=4, num_res_blocks=1),
])
def test_tokenizer_input_must_be_in_unit_range(make) -> None:
    torch.manual_seed(0)
    tokenizer = make().eval()
    img = torch.rand(2, 3, 16, 16)
    assert tokenizer.get_tokens(img).dtype == torch.int64
    name = type(tokenizer).__name__
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with pytest.raises(ValueError, match=f'{name} expects its input in \\[0, 1\\].*normalised'):
        tokenizer.get_tokens((img - mean) / std)
    with pytest.raises(ValueError, match='0-255 pixel values'):
        tokenizer.get_tokens(img * 255)
    tokenizer.get_tokens(img.clamp(0, 1) * (1 + 5e-4))  # resampling overshoot within tolerance
