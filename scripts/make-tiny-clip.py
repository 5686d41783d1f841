#!/usr/bin/env python3
"""Writes a small random CLIP vision model in Hugging Face format, and optionally reference
embeddings computed by transformers for some images.

The folder has the layout of a downloaded checkpoint (config.json, model.safetensors,
preprocessor_config.json), so `mimicit embed --model DIR` reads it exactly as it reads
`openai/clip-vit-base-patch32`. The weights are random (seeded): embeddings from it are only good
for checking that two implementations agree, never for similarity.

    python scripts/make-tiny-clip.py OUT_DIR [--seed 0] [--full] [--act quick_gelu|gelu]
        [--preset b32|b16|l14|l14-336]
        [--reference REF.json IMAGE ...]

--torchscript FILE.pt also writes the model as a TorchScript archive laid out as OpenAI's CLIP
archives are (parameters visual.conv1.weight, visual.positional_embedding, visual.proj and a
method encode_image), to test that loading path.

REF.json: {"images": {stem: {"embedding": [...], "pixel_sum": float}}, "pixel_values": FILE}
where FILE (next to REF.json, safetensors) holds the preprocessed input of every image in the
order of `order`, so the model alone can be compared on identical input.
"""

import argparse
import json
import os
import sys

import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import (
    CLIPConfig,
    CLIPModel,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil


# The shapes of OpenAI's vision towers, for speed measurements with random weights.
PRESETS = {
    "b32": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                num_attention_heads=12, image_size=224, patch_size=32, projection_dim=512),
    "b16": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                num_attention_heads=12, image_size=224, patch_size=16, projection_dim=512),
    "l14": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                num_attention_heads=16, image_size=224, patch_size=14, projection_dim=768),
    "l14-336": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                    num_attention_heads=16, image_size=336, patch_size=14, projection_dim=768),
}


def build(out, seed, full, act, image_size, patch, preset=None):
    torch.manual_seed(seed)
    vision = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=image_size,
        patch_size=patch,
        projection_dim=16,
        hidden_act=act,
        layer_norm_eps=1e-5,
    )
    if preset:
        vision.update(PRESETS[preset])
        image_size = vision["image_size"]
    if full:
        # A whole CLIP (text tower too), as openai/clip-vit-* checkpoints are: the vision side
        # must be found inside it by key names.
        cfg = CLIPConfig(
            vision_config=vision,
            text_config=dict(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=1,
                num_attention_heads=4,
                vocab_size=99,
                max_position_embeddings=16,
            ),
            projection_dim=16,
        )
        model = CLIPModel(cfg)
    else:
        model = CLIPVisionModelWithProjection(CLIPVisionConfig(**vision))
    # Random init leaves layer norms at 1/0 and the class embedding tiny: perturb every
    # parameter so that a wrong or missing weight shows in the output.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    # Marked so that mimicit says, whenever it loads this model, that its vectors mean nothing.
    cfg_path = os.path.join(out, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["mimicit_random_weights"] = True
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    proc = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    proc.save_pretrained(out)
    return model, proc


class OpenAIStyle(torch.nn.Module):
    """The vision tower behind OpenAI's archive interface: `encode_image(pixels)`."""

    def __init__(self, vision):
        super().__init__()
        self.tower = vision
        self.visual = torch.nn.Module()
        emb = vision.vision_model.embeddings
        self.visual.conv1 = emb.patch_embedding
        self.visual.positional_embedding = torch.nn.Parameter(emb.position_embedding.weight.detach().clone())
        self.visual.proj = torch.nn.Parameter(vision.visual_projection.weight.detach().t().clone())

    def forward(self, pixels):
        return self.encode_image(pixels)

    def encode_image(self, pixels):
        return self.tower(pixel_values=pixels).image_embeds


def write_torchscript(model, path, image_size):
    wrapped = OpenAIStyle(model).eval()
    example = torch.zeros(1, 3, image_size, image_size)
    traced = torch.jit.trace_module(
        wrapped, {"forward": example, "encode_image": example}, strict=False
    )
    traced.save(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--act", default="quick_gelu", choices=["quick_gelu", "gelu"])
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--patch", type=int, default=32)
    ap.add_argument("--reference")
    ap.add_argument("--torchscript")
    ap.add_argument("--preset", choices=sorted(PRESETS), help="full-size shapes (random weights)")
    ap.add_argument("images", nargs="*")
    a = ap.parse_intermixed_args()
    torch.set_num_threads(1)
    model, proc = build(a.out, a.seed, a.full, a.act, a.image_size, a.patch, a.preset)
    if a.torchscript:
        if a.full:
            sys.exit("--torchscript works on the vision-only model")
        write_torchscript(model, a.torchscript, a.image_size)
    if not a.reference:
        return
    if not a.images:
        sys.exit("--reference needs images")
    order, pixels, rows = [], [], {}
    with torch.no_grad():
        for path in a.images:
            stem = os.path.splitext(os.path.basename(path))[0]
            img = Image.open(path).convert("RGB")
            pv = proc(images=img, return_tensors="pt")["pixel_values"]
            if a.full:
                emb = model.get_image_features(pixel_values=pv)
                if not torch.is_tensor(emb):
                    emb = emb.pooler_output
            else:
                emb = model(pixel_values=pv).image_embeds
            order.append(stem)
            pixels.append(pv[0])
            rows[stem] = {
                "embedding": emb[0].tolist(),
                "pixel_sum": float(pv.double().sum()),
            }
    px_file = os.path.splitext(os.path.basename(a.reference))[0] + ".pixels.safetensors"
    save_file(
        {"pixel_values": torch.stack(pixels).contiguous()},
        os.path.join(os.path.dirname(os.path.abspath(a.reference)), px_file),
    )
    with open(a.reference, "w") as f:
        json.dump({"order": order, "images": rows, "pixel_values": px_file}, f, indent=1)


if __name__ == "__main__":
    main()
