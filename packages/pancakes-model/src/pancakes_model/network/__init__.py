"""The network: UNet featurizer, protocol/label embedding, sampler, the Pancakes module, weights I/O."""
