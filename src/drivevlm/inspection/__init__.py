"""Look inside a reward: calibrate θmin/θmax on simulator frames and record one episode term by term.

`frames` drives scripted episodes into `RewardRequest`s (the trainer's frame windowing), `calibrate` and
`inspect` run a preset's reward on them, and `report_html` writes the inspection page. The CLI front end is
`drivevlm reward calibrate|inspect` (drivevlm.cli.reward).
"""
