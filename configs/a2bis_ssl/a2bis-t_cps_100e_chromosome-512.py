# Cross pseudo supervision (CPS) comparison of the paper's Fig. 12 (docs/ssl.md): two
# differently initialised A2B-IS models, both trained on the labelled images, each pulled to the
# other's detached maps by the masked MSE on its own independently perturbed view; no EMA.
# Do not load_from one plain checkpoint: it would make the two models identical.
_base_ = './a2bis-t_ssl_100e_chromosome-512.py'

model = dict(semi_train_cfg=dict(variant='cps'), semi_test_cfg=dict(predict_on='student'))
custom_hooks = []  # the second model is trained, not averaged
