"""The rulebook: what PortaSIP and PortaBilling decide about a MESSAGE, and how it is
settled. Pure: plain Python over `imsim.model.config` objects, no simpy, no I/O, no pandas
outside the vectorised money of `imsim.rules.batch`.

- `imsim.rules.proxy`: service-policy selection, E.164 translation of the user part;
- `imsim.rules.rating`: which rate of a tariff applies, and what a message costs;
- `imsim.rules.decide`: `BillingEngine.decide`, the message path's checks in order;
- `imsim.rules.settle`: holding, committing and releasing the money (`Tab`), bundles;
- `imsim.rules.ledger`: the balances settlement works on;
- `imsim.rules.batch`: `rate_many`, the same rating over a whole DataFrame.

The simulator, planning, re-rating and the lab billing service all call these.
"""
