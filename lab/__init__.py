"""The live side of imsim: Kamailio stack, billing service, pjsua2 driver, targets."""
