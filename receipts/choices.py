from django.db import models


class ReceiptKind(models.TextChoices):
    PUBLISH = "publish", "Publish"
    EXECUTION = "execution", "Execution"
    ROLLBACK = "rollback", "Rollback"
