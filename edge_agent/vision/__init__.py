"""Vision: what is in a frame. Localisers find candidate boxes (the motion gate for video,
the burst background for stills), the classifier labels crops (LiteRT int8), the privacy
guard looks for people. Pure computation on frames: never imports counting, store,
service or office."""
