"""The admissions tables the feedback backfill reads, as upstream breathecode defines them.

Only the columns the job needs (plus what makes rows realistic) are declared;
table names, nullability, ``on_delete`` and foreign-key indexes match upstream.
"""

from django.db import models


class Academy(models.Model):
    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return self.slug


class Syllabus(models.Model):
    # Upstream allows syllabi without a slug; the backfill must print them as "None".
    slug = models.SlugField(max_length=100, blank=True, null=True, default=None)
    name = models.CharField(max_length=150, blank=True, null=True, default=None)
    private = models.BooleanField(default=False)
    is_documentation = models.BooleanField(default=False)
    academy_owner = models.ForeignKey(Academy, on_delete=models.CASCADE, null=True, blank=True, default=None)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return str(self.slug)


class SyllabusVersion(models.Model):
    json = models.JSONField(default=dict)
    version = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=15, default="PUBLISHED")
    syllabus = models.ForeignKey(Syllabus, on_delete=models.CASCADE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.syllabus.slug}.v{self.version}"


class Cohort(models.Model):
    slug = models.CharField(max_length=150, unique=True)
    name = models.CharField(max_length=150)
    kickoff_date = models.DateTimeField()
    ending_date = models.DateTimeField(blank=True, null=True)
    stage = models.CharField(max_length=15, default="INACTIVE")
    language = models.CharField(max_length=2, default="en")
    academy = models.ForeignKey(Academy, on_delete=models.CASCADE)
    syllabus_version = models.ForeignKey(
        SyllabusVersion, on_delete=models.SET_NULL, null=True, blank=True, default=None
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return self.slug
