"""The feedback tables the backfill writes, as upstream breathecode defines them.

``syllabus`` arrived long after the tables held millions of rows; migration
0002 adds it and ``backfill_feedback_syllabus`` fills it for the old rows.
"""

from django.conf import settings
from django.db import models

from breathecode.admissions.models import Academy, Cohort, Syllabus


class Answer(models.Model):
    title = models.CharField(max_length=200, blank=True)
    lowest = models.CharField(max_length=50, default="not likely")
    highest = models.CharField(max_length=50, default="very likely")
    lang = models.CharField(max_length=3, blank=True, default="en")
    score = models.IntegerField(default=None, blank=True, null=True)
    comment = models.TextField(max_length=1000, default=None, blank=True, null=True)
    status = models.CharField(max_length=15, default="PENDING")
    opened_at = models.DateTimeField(default=None, blank=True, null=True)
    sent_at = models.DateTimeField(default=None, blank=True, null=True)
    academy = models.ForeignKey(Academy, on_delete=models.CASCADE, default=None, blank=True, null=True)
    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, default=None, blank=True, null=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, default=None, blank=True, null=True
    )
    syllabus = models.ForeignKey(Syllabus, on_delete=models.SET_NULL, default=None, blank=True, null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"Answer {self.pk}"


class ReviewPlatform(models.Model):
    slug = models.SlugField(primary_key=True)
    name = models.CharField(max_length=100)

    def __str__(self):
        return self.slug


class Review(models.Model):
    nps_previous_rating = models.FloatField(blank=True, null=True, default=None)
    total_rating = models.FloatField(blank=True, null=True, default=None)
    public_url = models.URLField(blank=True, null=True, default=None)
    status = models.CharField(max_length=9, default="PENDING")
    comments = models.TextField(default=None, null=True, blank=True)
    is_public = models.BooleanField(default=False)
    lang = models.CharField(max_length=3, blank=True, null=True, default=None)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, null=True, blank=True, default=None)
    platform = models.ForeignKey(ReviewPlatform, on_delete=models.CASCADE)
    syllabus = models.ForeignKey(Syllabus, on_delete=models.SET_NULL, default=None, blank=True, null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"Review {self.pk}"
