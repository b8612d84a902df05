# The tiny fine-tuning config as a 2-class classifier of tests/data/tiny_images, with the
# class names in its datasets (as a user's config lists them).
_base_ = ['../../../configs/beit_finetune/beit_vit-b-p16_8xb128-lrd0.65-100e_in1k_tiny.py']

classes = ('objects', 'people_and_animals')
model = dict(head=dict(num_classes=2), data_preprocessor=dict(num_classes=2))
train_dataloader = dict(dataset=dict(data_root='tests/data/tiny_images', classes=classes))
val_dataloader = dict(dataset=dict(data_root='tests/data/tiny_images', classes=classes,
                                   data_prefix=dict(img_path='train')))
test_dataloader = val_dataloader
