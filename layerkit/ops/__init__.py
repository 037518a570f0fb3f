"""Pure numerical helpers (compositing, wavelets, ROI, morphology); no stage imports them twice."""
