"""GalaxySD-mini sizes: the v2 defaults (128 px, 8x VAE, 16x16x8 latent) and the v1 sizes."""
import torch

from galaxysd_core.models.mini import MiniModelConfig, build_mini_components, build_unet, build_vae


def test_v2_defaults_are_an_8x_vae_to_a_16x16x8_latent():
    cfg = MiniModelConfig()
    assert (cfg.resolution, cfg.downsampling, cfg.latent_size, cfg.latent_channels) == (128, 8, 16, 8)
    torch.manual_seed(0)
    vae = build_vae(cfg).eval()
    assert len(vae.config.block_out_channels) == 4  # three 2x downsamplings
    x = torch.rand(2, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mean
        y = vae.decode(z).sample
    assert z.shape == (2, 8, 16, 16) and y.shape == x.shape
    unet = build_unet(cfg)
    assert unet.config.sample_size == 16 and unet.config.in_channels == unet.config.out_channels == 8


def test_v1_sizes_stay_buildable():
    cfg = MiniModelConfig.v1()
    assert (cfg.resolution, cfg.downsampling, cfg.latent_size, cfg.latent_channels) == (64, 4, 16, 4)
    vae = build_vae(cfg)
    with torch.no_grad():
        assert vae.encode(torch.zeros(1, 3, 64, 64)).latent_dist.mean.shape == (1, 4, 16, 16)


def test_pipeline_of_default_components_draws_128px(tmp_path):
    from galaxysd_core.pipelines.pipeline_galaxysd import GalaxySDPipeline, load_pipeline

    pipe = load_pipeline(GalaxySDPipeline(**build_mini_components(seed=0)))
    assert pipe.vae_scale_factor == 8 and pipe.default_size == 128
    out = pipe("sdss, smooth, completely round galaxy", seed=0, num_inference_steps=1, output_type="np")
    assert out.images.shape == (1, 128, 128, 3)
